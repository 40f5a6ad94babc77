def test_importing_serving_loads_no_optional_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, corral.serving\n"
        "heavy = {'sklearn', 'skops', 'onnxruntime', 'xgboost', 'lightgbm', 'fastapi',"
        " 'sqlalchemy', 'httpx'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
