-- Evidence written and chained in one statement.
--
-- A webhook's evidence used to cost four round trips (BEGIN, each INSERT … RETURNING,
-- ledger_append, COMMIT) with the ledger lock held across the last two. Here the
-- service sends the rows as JSON and one function call inserts them, renders each
-- new row's canonical JSON in the database and chains them: a single statement in its
-- own implicit transaction, so the ledger lock is held only for the chaining and the
-- commit's WAL flush.
--
-- canonical_json must produce exactly the text storage/ledger.py's canonical_json
-- produces from the same to_jsonb row (keys sorted by code point, "," and ":" with no
-- spaces, strings escaped as JSON does, non-ASCII as is): `ivr verify` recomputes every
-- hash in Python, so any difference shows up as an "edited" record, and a test compares
-- the two renderings over awkward text.

CREATE FUNCTION canonical_json(j jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = public, pg_temp
AS $$
BEGIN
  CASE jsonb_typeof(j)
    WHEN 'object' THEN
      -- COLLATE "C" compares UTF-8 bytes, which orders like code points (Python's sort).
      RETURN '{' || coalesce((SELECT string_agg(to_jsonb(e.key)::text || ':' || canonical_json(e.value), ','
                                               ORDER BY e.key COLLATE "C")
                              FROM jsonb_each(j) AS e), '') || '}';
    WHEN 'array' THEN
      RETURN '[' || coalesce((SELECT string_agg(canonical_json(a.value), ',' ORDER BY a.n)
                              FROM jsonb_array_elements(j) WITH ORDINALITY AS a(value, n)), '') || ']';
    ELSE
      RETURN j::text;  -- a scalar: jsonb already renders it as JSON text
  END CASE;
END;
$$;

-- Inserts rows[i] into tables[i] (columns named by the JSON keys; the rest take their
-- defaults), skipping a row whose unique key exists (a retried webhook), then chains
-- the new rows. Returns the new head hash, or NULL when nothing was new.
-- SECURITY INVOKER on purpose: the caller's own INSERT privileges apply; only the
-- chaining goes through ledger_append's definer rights.
CREATE FUNCTION append_evidence(tables text[], rows jsonb[]) RETURNS text
LANGUAGE plpgsql
SET search_path = public, pg_temp
SET TimeZone = 'UTC'  -- the canonical form renders timestamps in UTC, whatever the session says
AS $$
DECLARE
  i        integer;
  columns  text;
  new_id   bigint;
  content  jsonb;
  kinds    text[] := '{}';
  ids      bigint[] := '{}';
  contents text[] := '{}';
BEGIN
  FOR i IN 1 .. coalesce(array_length(tables, 1), 0) LOOP
    IF tables[i] = 'ledger' OR NOT EXISTS (
         SELECT FROM pg_trigger
         WHERE tgrelid = to_regclass(quote_ident(tables[i])) AND tgfoid = 'refuse_evidence_change'::regproc) THEN
      RAISE EXCEPTION 'append_evidence: % is not an evidence table', tables[i];
    END IF;
    SELECT string_agg(quote_ident(k), ', ') INTO columns FROM jsonb_object_keys(rows[i]) AS k;
    EXECUTE format(
      'INSERT INTO %1$I (%2$s) SELECT %2$s FROM jsonb_populate_record(NULL::%1$I, $1)
       ON CONFLICT DO NOTHING RETURNING id, to_jsonb(%1$I.*)', tables[i], columns)
      INTO new_id, content USING rows[i];
    IF new_id IS NOT NULL THEN
      kinds := kinds || tables[i];
      ids := ids || new_id;
      contents := contents || canonical_json(content);
    END IF;
  END LOOP;
  IF array_length(kinds, 1) IS NULL THEN
    RETURN NULL;
  END IF;
  RETURN ledger_append(kinds, ids, contents);
END;
$$;
GRANT EXECUTE ON FUNCTION canonical_json(jsonb) TO ivr_app;
GRANT EXECUTE ON FUNCTION append_evidence(text[], jsonb[]) TO ivr_app;
