-- 0.3.0: any SOQL, the org's limits and an object's fields, from SQL.
CREATE FUNCTION @extschema@."describe"(
	"server" TEXT,
	"object" TEXT
) RETURNS TABLE (
	"name" TEXT,
	"type" TEXT,
	"column_type" TEXT,
	"createable" bool,
	"updateable" bool,
	"nillable" bool,
	"filterable" bool
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'describe_object_wrapper';

CREATE FUNCTION @extschema@."limits"(
	"server" TEXT
) RETURNS TABLE (
	"name" TEXT,
	"max" bigint,
	"remaining" bigint
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'org_limits_wrapper';

CREATE FUNCTION @extschema@."query"(
	"server" TEXT,
	"soql" TEXT
) RETURNS SETOF jsonb
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'run_query_wrapper';
