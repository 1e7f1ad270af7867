"""Hugging Face caches laid out as huggingface_hub leaves them after a download, for offline tests."""

import shutil


def fake_hub_cache(cache, repo_id: str, revision: str, files_from) -> None:
    """Lay out a Hugging Face cache entry for repo_id at a commit, as a download would."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / revision).write_text(commit)
    shutil.copytree(files_from, repo / "snapshots" / commit)


def fake_model_repo(cache, repo_id: str, commit: str, files: dict[str, bytes]) -> None:
    """A model repo's files at a commit in a Hugging Face cache, as a download by commit hash leaves them
    (snapshots/<commit>/<file>, no refs): what `snapshot_download(repo_id, revision=commit)` finds offline."""
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        (snapshot / name).write_bytes(content)
