"""The reduced-size S3Gen is assembled exactly as upstream's constructor builds the real one."""

from __future__ import annotations

from chatterbox.models.s3gen import S3Gen

from worker.engine.model.architecture import S3GEN_FULL, assemble_s3gen


def shapes(module: S3Gen) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_assembly_at_upstream_sizes_equals_upstream_s3gen() -> None:
    for meanflow in (False, True):
        assert shapes(assemble_s3gen(S3GEN_FULL, meanflow=meanflow)) == shapes(
            S3Gen(meanflow=meanflow)
        )
