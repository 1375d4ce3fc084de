"""``engine="ray"``: items spread over Ray actors, each building its own models from a :class:`ScoringConfig`.

The actors only compute rows; the driver (:func:`sparktts.eval.runner.run_eval`) still writes every one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import EvalError
from .lists import EvalItem
from .process import Synthesizer, process_item
from .scoring import ScoringConfig


class _RayWorker:
    """Ray actor body: builds its own models once, then processes items."""

    def __init__(self, config: ScoringConfig, synthesize: Synthesizer | None) -> None:
        self.scorer = config.build()
        self.synthesize = synthesize

    def process(self, item: EvalItem, wav_path: str) -> dict:
        return process_item(item, self.scorer, Path(wav_path), self.synthesize)


def iter_ray(
    jobs: list[tuple[EvalItem, Path]], config: ScoringConfig, synthesize: Synthesizer | None, num_workers: int
) -> Iterable[dict]:
    try:
        import ray
    except ImportError as exc:
        raise EvalError("engine='ray' needs Ray: pip install ray (or use engine='local').") from exc
    started = not ray.is_initialized()
    if started:  # a private local cluster, shut down again when the run ends
        ray.init(num_cpus=max(1, num_workers), include_dashboard=False, log_to_driver=False)
    try:
        actor_cls = ray.remote(_RayWorker)
        actors = [actor_cls.remote(config, synthesize) for _ in range(max(1, num_workers))]
        pending: dict = {}
        queue = list(jobs)
        next_actor = 0
        while queue or pending:
            while queue and len(pending) < 2 * len(actors):  # bounded in-flight work: results stream back
                item, path = queue.pop(0)
                ref = actors[next_actor % len(actors)].process.remote(item, str(path))
                next_actor += 1
                pending[ref] = item
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:
                    # Item errors come back as rows; an exception here means the worker itself failed
                    # (e.g. its models could not load). Stop rather than write every item as failed.
                    raise EvalError(f"Ray worker failed ({type(exc).__name__}): {exc}") from exc
                yield row
    finally:
        if started:
            ray.shutdown()


__all__ = ["iter_ray"]
