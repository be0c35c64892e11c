-- A foreign table's rowid_column and upsert_key must name one of its
-- columns (upsert_key: a column, or the Salesforce field of one), checked
-- when the table is made or altered: the options' validator sees the
-- options alone, not the table.
CREATE FUNCTION @extschema@._check_foreign_table_options() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    SELECT c.objid::regclass AS tab, o.option_name, o.option_value INTO bad
      FROM pg_catalog.pg_event_trigger_ddl_commands() c
      JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.objid
      JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver
      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw AND w.fdwname = 'salesforce'
      CROSS JOIN LATERAL pg_catalog.pg_options_to_table(ft.ftoptions) o
     WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND o.option_name IN ('rowid_column', 'upsert_key')
       AND NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = ft.ftrelid AND a.attnum > 0 AND NOT a.attisdropped
              AND (a.attname = o.option_value
                   OR (o.option_name = 'upsert_key'
                       AND coalesce((SELECT pg_catalog.lower(f.option_value) = pg_catalog.lower(o.option_value)
                                       FROM pg_catalog.pg_options_to_table(a.attfdwoptions) f
                                      WHERE f.option_name = 'field'),
                                    -- no field option: the field named as the column, ignoring
                                    -- case, or whose snake_case name the column is
                                    pg_catalog.replace(pg_catalog.lower(a.attname), '_', '')
                                      = pg_catalog.replace(pg_catalog.lower(o.option_value), '_', '')))))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'HV005', -- fdw_column_name_not_found
            MESSAGE = pg_catalog.format('%s %L of foreign table %s names none of its columns',
                                        bad.option_name, bad.option_value, bad.tab),
            HINT = CASE bad.option_name
                   WHEN 'rowid_column' THEN 'Name the column that holds the record Id, such as id.'
                   ELSE 'Name the column of an external id field, or its Salesforce field.' END;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION @extschema@._check_foreign_table_options() FROM PUBLIC;
CREATE EVENT TRIGGER pg_salesforce_foreign_table_options ON ddl_command_end
    WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'ALTER TABLE', 'IMPORT FOREIGN SCHEMA')
    EXECUTE FUNCTION @extschema@._check_foreign_table_options();
