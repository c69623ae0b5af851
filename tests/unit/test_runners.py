"""tasks.runners: the Beam flags of the TFX components."""
from tasks import runners


def test_tfx_components_on_the_direct_runner_do_not_package_tfx(monkeypatch):
    from tfx.utils import dependency_utils

    def package():
        raise AssertionError("TFX built a package for remote Beam workers")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", package)
    for workers in (1, 2):
        args = runners.direct_args(workers)
        assert dependency_utils.make_beam_dependency_flags(args) == args
