"""Monitoring of the served model: the most common (anonymized) user questions and feedback counts.

Independent of the training chain: it only reads the feedback store written by `slm-pipeline serve`.
"""


import dagster as dg

from ..core.artifacts import sha256_json
from ..core.feedback import feedback_store_location, open_feedback_store, redacted_location
from .resources import PipelineSettings, md_table, numbers
from .stage import pipeline_asset, versioned_output

GROUP = "monitoring"


@pipeline_asset(
    group_name=GROUP,
    kinds={"sqlite"},
    owners=["team:ml"],
    description="The most common user questions asked to the serving API (anonymized with Presidio before they "
    "are stored) and feedback counts, from <artifacts_dir>/feedback/feedback.db. Cheap; does not depend on the "
    "training chain.",
)
def serving_questions(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.Output[dict]:
    cfg = settings.load()
    db = redacted_location(feedback_store_location(cfg))  # a database URL may hold a password
    store = open_feedback_store(cfg, create=False)
    if store is None:
        context.log.info(f"no feedback store yet ({db}); run `slm-pipeline serve` to collect questions")
        top, stats = [], {}
    else:
        with store:
            top, stats = store.top_questions(cfg.feedback.top_questions), store.stats()
    rows = [{"rank": i, "count": q["count"], "question": q["question"][:200], "last seen": q["last_seen"]}
            for i, q in enumerate(top, 1)]
    return versioned_output(
        {"db": str(db), "top_questions": top, "stats": stats}, sha256_json([top, stats])[:12],
        {
            "feedback_store": dg.MetadataValue.text(str(db)),
            **numbers("", stats),
            "top_questions": md_table(rows, ["rank", "count", "question", "last seen"]),
        },
    )
