"""The built-in model's config and tokenizer files that ship in inferq.shared (for the API, which does not
install the model's package) are the model package's own."""

from __future__ import annotations

import pytest

from inferq.shared.model_limits import read_limits
from inferq.shared.registry import BUILTINS, builtin_files_path, builtin_path


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_the_shipped_files_are_those_of_the_model_package(name: str) -> None:
    # given: the files shipped for the API, and the model package's folder
    shipped = sorted(p for p in builtin_files_path(name).iterdir() if p.is_file())
    assert {p.name for p in shipped} >= {"config.json", "tokenizer.json", "tokenizer_config.json"}

    # then: each is byte for byte the package's, and the limits read from either are the same
    for path in shipped:
        assert path.read_bytes() == (builtin_path(name) / path.name).read_bytes(), path.name
    assert read_limits(builtin_files_path(name)) == read_limits(builtin_path(name))
