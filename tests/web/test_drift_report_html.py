from __future__ import annotations

import re

import numpy as np

from corral.monitoring.drift import drift_report
from corral.web.reports import render_drift_report
from tests.monitoring.test_drift import ArrayColumns


def test_report_page_is_self_contained_and_escapes_names() -> None:
    rng = np.random.default_rng(0)
    hostile = "<script>alert(1)</script>"
    ref = {"age": rng.normal(40, 5, 3000), hostile: rng.normal(size=3000)}
    cur = {"age": rng.normal(45, 5, 3000), hostile: rng.normal(size=3000)}
    report = drift_report(ArrayColumns(ref), ArrayColumns(cur))
    page = render_drift_report(report, title="Drift & <b>quality</b>")
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Drift &amp; &lt;b&gt;quality&lt;/b&gt;" in page
    assert not re.search(r"(src|href)=", page)
    assert '<tr class="drifted">\n      <td>age</td>' in page
    assert page.count("<svg") == 2
    assert page.count('class="ref"') >= 2 * 20
