import pytest


@pytest.fixture(scope="session")
def smoke_corpus():
    """The CI corpus (built once, about 5 s, idempotent)."""
    from kdlib import corpus

    corpus.build("smoke", progress=False)
    return corpus.load("smoke")
