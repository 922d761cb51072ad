-- canonical_json without a recursive call per column: scalars (nearly every column of an
-- evidence row) are rendered inline, and only nested objects and arrays recurse. Same
-- text as before, a fraction of the work: it runs for every row a webhook appends.
CREATE OR REPLACE FUNCTION canonical_json(j jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = public, pg_temp
AS $$
  SELECT CASE jsonb_typeof(j)
    WHEN 'object' THEN
      '{' || coalesce((SELECT string_agg(
                          to_jsonb(e.key)::text || ':' ||
                          CASE WHEN jsonb_typeof(e.value) IN ('object', 'array')
                               THEN canonical_json(e.value) ELSE e.value::text END,
                          ',' ORDER BY e.key COLLATE "C")
                        FROM jsonb_each(j) AS e), '') || '}'
    WHEN 'array' THEN
      '[' || coalesce((SELECT string_agg(
                          CASE WHEN jsonb_typeof(a.value) IN ('object', 'array')
                               THEN canonical_json(a.value) ELSE a.value::text END,
                          ',' ORDER BY a.n)
                        FROM jsonb_array_elements(j) WITH ORDINALITY AS a(value, n)), '') || ']'
    ELSE j::text
  END
$$;
