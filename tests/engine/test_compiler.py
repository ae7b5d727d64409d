import pytest

from flows.compiler import CompileError, compile_document, deploy, rollback
from flows.models import Flow, FlowVersion
from integrations.models import Connection

from .conftest import document

pytestmark = pytest.mark.django_db


def errors_of(doc, owner):
    with pytest.raises(CompileError) as caught:
        compile_document(doc, owner)
    return caught.value


def test_a_valid_document_compiles_to_a_plan_with_steps_in_edge_order(user):
    doc = document(
        steps=[
            {"id": "greet", "kind": "logic.template", "config": {"template": "{{ event.body }}"}},
            {"id": "check", "kind": "logic.filter", "config": {"condition": "{{ true }}"}},
        ],
        edges=[["trigger", "check"], ["check", "greet"]],
    )
    plan = compile_document(doc, user)
    assert [s["id"] for s in plan["steps"]] == ["check", "greet"]
    assert [s["position"] for s in plan["steps"]] == [0, 1]
    assert plan["trigger"] == {"kind": "trigger.webhook", "config": {}}
    assert plan["settings"] == {"greeting": "Hello"}
    assert plan["steps"][0]["retry"] == {"max_attempts": 3, "backoff_s": 0.01}
    assert plan["time_limit_s"] > 0


def test_errors_name_the_step_and_the_field(user):
    doc = document(
        settings={"github_repo": {"value": "", "required": True}},
        steps=[
            {
                "id": "summarise",
                "kind": "logic.template",
                "config": {"template": "Repo {{ settings.github_repo }}: {{ steps.later.text }}"},
            },
            {"id": "later", "kind": "logic.template", "config": {"template": "x"}},
            {"id": "ghost", "kind": "no.such.block", "config": {}},
        ],
        edges=[],
    )
    exc = errors_of(doc, user)
    assert exc.errors == [
        "step 'summarise': field 'template' refers to step 'later', which does not run before this step (connect it to this step's inputs)",
        "step 'summarise': setting 'github_repo' is required",
        "step 'ghost': unknown block 'no.such.block'",
    ]
    assert [(e.step, e.field) for e in exc.errors] == [
        ("summarise", "template"),
        ("summarise", "template"),
        ("ghost", "kind"),
    ]
    assert exc.as_dicts()[1] == {
        "step": "summarise",
        "field": "template",
        "message": "step 'summarise': setting 'github_repo' is required",
    }


def test_references_to_missing_steps_and_settings_and_bad_templates(user):
    doc = document(
        steps=[
            {
                "id": "a",
                "kind": "logic.template",
                "config": {"template": "{{ steps.nope.x }} {{ settings.undefined_one }}"},
            },
            {"id": "b", "kind": "logic.template", "config": {"template": "{{ oops( }}"}},
            {"id": "c", "kind": "logic.template", "config": {}},
            {"id": "d", "kind": "logic.template", "config": {"template": "x", "colour": "red"}},
        ],
        edges=[],
    )
    assert errors_of(doc, user).errors == [
        "step 'a': field 'template' refers to step 'nope', which does not exist",
        "step 'a': field 'template' refers to setting 'undefined_one', which is not defined",
        "step 'b': field 'template': template error at line 1: unexpected '}', expected ')'",
        "step 'c': field 'template' is required",
        "step 'd': unknown field 'colour' for block 'logic.template'",
    ]


def test_cycles_and_unreachable_steps_are_refused(user):
    doc = document(
        steps=[
            {"id": "a", "kind": "logic.template", "config": {"template": "a"}},
            {"id": "b", "kind": "logic.template", "config": {"template": "b"}},
            {"id": "c", "kind": "logic.template", "config": {"template": "c"}},
        ],
        edges=[["trigger", "a"], ["a", "b"], ["b", "a"], ["trigger", "trigger"]],
    )
    errors = errors_of(doc, user).errors
    assert errors == [
        "no edge may lead into the trigger",
        "step 'c': no edge from the trigger leads to this step",
        "edges form a cycle through steps 'a', 'b' (to repeat steps, put them in a For each loop)",
    ]
    assert errors[2].field == "edges"


def test_structure_errors_come_first_and_alone(user):
    exc = errors_of({"schema": "other@9", "steps": [{"id": "Bad Id"}], "edges": "x"}, user)
    assert exc.errors == [
        "unsupported schema 'other@9': this server reads documents with "
        '"schema": "flowbuilder/flow@2" (and upgrades "flowbuilder/flow@1")',
        'trigger: a trigger with a "kind" is required',
        "step 1: id 'Bad Id' must start with a lowercase letter and hold only lowercase "
        "letters, digits and underscores (and not be 'trigger')",
        '"edges" must be a list of ["from", "port", "to"] triples',
    ]
    assert errors_of([], user).errors == ["The flow document must be a JSON object."]


def test_schedule_cron_and_timezone_are_checked(user):
    doc = document(
        trigger={
            "kind": "trigger.schedule",
            "config": {"cron": "61 * * * *", "timezone": "Mars/Base"},
        }
    )
    assert errors_of(doc, user).errors == [
        "trigger: '61 * * * *' is not a valid cron expression (five fields: minute hour day "
        "month weekday, e.g. '*/15 * * * *')",
        "trigger: unknown time zone 'Mars/Base'",
    ]
    doc["trigger"]["config"] = {"cron": "*/5 * * * *"}
    plan = compile_document(doc, user)
    assert plan["trigger"] == {
        "kind": "trigger.schedule",
        "config": {"cron": "*/5 * * * *", "timezone": "UTC"},
    }


def test_capabilities_bind_to_the_owners_connection_of_their_service(
    user, other_user, secret_service
):
    theirs = Connection.objects.create(owner=other_user, service="vault", name="theirs")
    mine = Connection.objects.create(owner=user, service="vault", name="mine")
    step = {"id": "read", "kind": "test.vault.read", "config": {}}
    doc = document(steps=[step], edges=[], connections={})
    assert errors_of(doc, user).errors == [
        "step 'read': capability 'test.vault.read' needs a vault connection: choose one in the "
        "step's Connection picker"
    ]
    doc["connections"] = {"vault": {"service": "vault", "connection": None}}
    exc = errors_of(doc, user)
    assert exc.errors == [
        "step 'read': capability 'test.vault.read' needs a vault connection, and the flow's "
        "connection 'vault' is not chosen yet: choose one in the step's Connection picker"
    ]
    assert exc.errors[0].field == "connections.vault"
    doc["connections"]["vault"]["connection"] = theirs.pk
    assert errors_of(doc, user).errors == [
        "step 'read': connection 'vault' refers to a connection that is not one of yours"
    ]
    doc["connections"]["vault"] = {"service": "vault", "connection": mine.pk, "limits": {"x": 1}}
    plan = compile_document(doc, user)
    assert plan["steps"][0]["bindings"] == {
        "test.vault.read": {
            "service": "vault",
            "alias": "vault",
            "connection": mine.pk,
            "limits": {"x": 1},
        }
    }


def test_code_steps_grant_only_known_capabilities_and_limits_are_capped(user):
    doc = document(
        steps=[
            {
                "id": "code",
                "kind": "code.wasm",
                "config": {"artifact": "ab" * 32},
                "grants": ["kv.get", "no.such.capability"],
                "limits": {"timeout_s": 100000},
            },
            {
                "id": "tpl",
                "kind": "logic.template",
                "config": {"template": "x"},
                "grants": ["kv.get"],
            },
        ],
        edges=[],
    )
    assert errors_of(doc, user).errors == [
        "step 'code': limit 'timeout_s' is 100000 s, above this server's maximum of 300 s",
        "step 'code': module 'abababababab' is not among your uploaded modules",
        "step 'code': unknown capability 'no.such.capability'",
        "step 'tpl': only code steps take grants: this block's capabilities come with its kind",
    ]


def test_deploy_stores_numbered_immutable_versions_and_rollback_makes_a_new_one(user):
    flow = Flow.objects.create(owner=user, name="F", slug="f", document=document())
    first = deploy(flow, user, note="first")
    flow.document = document(settings={"greeting": {"value": "Hi"}})
    flow.save()
    second = deploy(flow, user)
    flow.refresh_from_db()
    assert (first.number, second.number) == (1, 2)
    assert flow.status == Flow.Status.ACTIVE and flow.current_version == second
    assert second.plan["settings"] == {"greeting": "Hi"}
    with pytest.raises(ValueError, match="immutable"):
        first.save()

    third = rollback(flow, 1, user)
    flow.refresh_from_db()
    assert third.number == 3 and third.note == "Rollback to version 1"
    assert third.document == first.document and flow.document == first.document
    assert flow.current_version == third
    assert third.plan["settings"] == {"greeting": "Hello"}
    assert FlowVersion.objects.filter(flow=flow).count() == 3
    with pytest.raises(ValueError, match="has no version 9"):
        rollback(flow, 9, user)


def test_a_broken_draft_is_not_deployed(user):
    flow = Flow.objects.create(
        owner=user, name="F", slug="f", document=document(steps=[{"id": "x", "kind": "nope"}])
    )
    with pytest.raises(CompileError):
        deploy(flow, user)
    flow.refresh_from_db()
    assert flow.current_version is None and flow.status == Flow.Status.DRAFT
    assert not FlowVersion.objects.exists()


def test_a_missing_connection_is_named_as_people_say_it(user):
    step = {"id": "ask", "kind": "llm.chat", "config": {"prompt": "hi"}}
    assert errors_of(document(steps=[step], edges=[], connections={}), user).errors == [
        "step 'ask': capability 'llm.chat' needs an LLM connection: choose one in the step's "
        "Connection picker"
    ]
