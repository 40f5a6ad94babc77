"""Security: scanning a version's files for code they would run when loaded, and identity.

``scan_folder`` reads bytes only — it never loads, unpickles or imports what it scans.
"""

from corral.security._report import Finding, ScanLimits, ScanReport, Verdict
from corral.security.identity import IdentityService
from corral.security.scanning import scan_file, scan_folder

__all__ = [
    "Finding",
    "IdentityService",
    "ScanLimits",
    "ScanReport",
    "Verdict",
    "scan_file",
    "scan_folder",
]
