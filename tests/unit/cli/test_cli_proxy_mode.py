"""`switchboard serve` picks Serve's fastest ingress (HAProxy) unless told otherwise."""
from runtime.cli.main import FAST_INGRESS_ENV, use_fast_ingress


def test_haproxy_mode_by_default():
    env: dict[str, str] = {}
    use_fast_ingress(env)
    assert env == FAST_INGRESS_ENV


def test_opt_out_and_explicit_settings_win():
    env = {"SWITCHBOARD_PROXY": "serve"}
    use_fast_ingress(env)
    assert env == {"SWITCHBOARD_PROXY": "serve"}
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    use_fast_ingress(env)
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "0" and env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] == "1"
