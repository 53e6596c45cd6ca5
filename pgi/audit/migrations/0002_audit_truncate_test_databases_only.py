from django.db import migrations

# The one exception to the append-only trigger (0001), TRUNCATE with pgi.audit_truncate = 'allow',
# now holds only in a database whose name starts with test_ (Django's test databases, which the
# test suite empties between tests). In any other database no session setting lets TRUNCATE through.
PG_FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_event_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE'
       AND current_database() LIKE 'test\_%'
       AND current_setting('pgi.audit_truncate', true) = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
"""
PG_REVERSE = """
CREATE OR REPLACE FUNCTION audit_event_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('pgi.audit_truncate', true) = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
"""


def function_replace(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)  # no placeholders: RAISE uses %


def function_restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_REVERSE, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_trail_audit")]

    operations = [migrations.RunPython(function_replace, function_restore)]
