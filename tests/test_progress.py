from companion import progress


def test_progress_bars_are_off_in_the_book_build(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress.tqdm(range(3), disable=False).disable  # the build wins over a caller
    monkeypatch.setenv("TQDM_DISABLE", "")
    assert not progress.tqdm(range(3)).disable
    assert progress.tqdm(range(3), disable=True).disable
