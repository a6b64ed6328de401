"""Plans' weeks and revisions' changes may be stored compactly from here on (`SALESOPS_PLANNING_PLAN_STORAGE`
`compact`): a plan's weeks as `{"fields": [...], "rows": [[...], ...]}`, a revision's changes grouped by week as
`{"fields": [...], "weeks": [[week_start, changed field positions or null, before values or null, after
values], ...]}`. This version reads both forms, so the upgrade changes no row: replicas of the version before
it, which read only the spelled-out form, keep running beside this one while it writes that form (the default).

The downgrade spells every compact row out again, in the form the earlier version reads and writes (an object
per week; one `{"week_start", "field", "before", "after"}` per change, in the same order): after it the
earlier version can be deployed again. Run it only once no replica writes compact rows any more.

Revision ID: 0008_compact_plan_documents
"""

from alembic import op

revision = "0008_compact_plan_documents"
down_revision = "0007_plan_documents_json"

# Each compact row: its values paired with the field names, in field order.
_SPELL_OUT_PLANS = """
UPDATE planning.plans AS p
SET weeks = (
    SELECT coalesce(
        json_agg(
            (SELECT json_object_agg(f.name, r.value -> (f.n - 1)::int ORDER BY f.n)
             FROM json_array_elements_text(p.weeks -> 'fields') WITH ORDINALITY AS f(name, n))
            ORDER BY r.n
        ),
        '[]'::json
    )
    FROM json_array_elements(p.weeks -> 'rows') WITH ORDINALITY AS r(value, n)
)
WHERE json_typeof(p.weeks) = 'object'
"""

# Each changed week: one change per after value; its field is the field at that position (null positions: all
# fields in order), its before the value at that position (null befores: a new week, before null).
_SPELL_OUT_REVISIONS = """
UPDATE planning.plan_revisions AS v
SET changes = (
    SELECT coalesce(
        json_agg(
            json_build_object(
                'week_start', w.value -> 0,
                'field', v.changes -> 'fields' -> (
                    CASE WHEN json_typeof(w.value -> 1) = 'null' THEN i ELSE (w.value -> 1 ->> i)::int END
                ),
                'before', CASE WHEN json_typeof(w.value -> 2) = 'null' THEN NULL ELSE w.value -> 2 -> i END,
                'after', w.value -> 3 -> i
            )
            ORDER BY w.n, i
        ),
        '[]'::json
    )
    FROM json_array_elements(v.changes -> 'weeks') WITH ORDINALITY AS w(value, n),
         generate_series(0, json_array_length(w.value -> 3) - 1) AS i
)
WHERE json_typeof(v.changes) = 'object'
"""


def upgrade() -> None:
    """Nothing to change: rows of either form are read."""


def downgrade() -> None:
    op.execute(_SPELL_OUT_PLANS)
    op.execute(_SPELL_OUT_REVISIONS)
