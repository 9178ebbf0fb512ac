"""Where router state lives. `local`: one directory of JSON, .npy and cache files."""
