"""The lab: replay benches, baselines, reports, stress, converters and the `sls-router`
command. It uses the engine and the engine never imports it, so its plotting, tables
and progress bars live behind an extra: `pip install 'sls-router[bench]'`."""

from importlib.util import find_spec

from ..errors import DependencyError

# checked here, once, so that any lab module fails with the extra to install rather than
# with whichever import a run happens to reach first
_missing = [name for name in ("matplotlib", "rich", "tqdm") if find_spec(name) is None]
if _missing:
    raise DependencyError(
        f"the sls-router lab needs {', '.join(_missing)}: pip install 'sls-router[bench]'."
    )
