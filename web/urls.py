from django.urls import path

from .views import builder, connections, dashboard, flows, gallery, modules, runs

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("flows/new/", dashboard.flow_create, name="flow_create"),
    path("flows/import/", dashboard.flow_import, name="flow_import"),
    path("flows/<int:flow_id>/", flows.flow_detail, name="flow_detail"),
    path("flows/<int:flow_id>/export/", flows.flow_export, name="flow_export"),
    path("flows/<int:flow_id>/duplicate/", flows.flow_duplicate, name="flow_duplicate"),
    path("flows/<int:flow_id>/setup/", flows.flow_setup, name="flow_setup"),
    path("flows/<int:flow_id>/deploy/", flows.flow_deploy, name="flow_deploy"),
    path("flows/<int:flow_id>/pause/", flows.flow_pause, name="flow_pause"),
    path("flows/<int:flow_id>/delete/", flows.flow_delete, name="flow_delete"),
    path("flows/<int:flow_id>/versions/", flows.flow_versions, name="flow_versions"),
    path(
        "flows/<int:flow_id>/versions/<int:number>/diff/", flows.version_diff, name="version_diff"
    ),
    path(
        "flows/<int:flow_id>/versions/<int:number>/rollback/",
        flows.version_rollback,
        name="version_rollback",
    ),
    path("flows/<int:flow_id>/runs/", runs.run_list, name="flow_runs"),
    path("flows/<int:flow_id>/test-effects/", flows.flow_test_effects, name="flow_test_effects"),
    path("flows/<int:flow_id>/builder/", builder.builder, name="builder"),
    path("flows/<int:flow_id>/builder/save/", builder.builder_save, name="builder_save"),
    path("flows/<int:flow_id>/builder/deploy/", builder.builder_deploy, name="builder_deploy"),
    path("flows/<int:flow_id>/builder/node/", builder.builder_node_form, name="builder_node"),
    path("flows/<int:flow_id>/builder/upload/", builder.builder_upload, name="builder_upload"),
    path("flows/<int:flow_id>/builder/sample/", builder.builder_sample, name="builder_sample"),
    path("flows/<int:flow_id>/builder/pin/", builder.builder_pin, name="builder_pin"),
    path("flows/<int:flow_id>/builder/test/", builder.builder_test_run, name="builder_test"),
    path(
        "flows/<int:flow_id>/builder/connections/<slug:service>/",
        builder.builder_connection,
        name="builder_connection",
    ),
    path("runs/", runs.run_list, name="run_list"),
    path("runs/<int:run_id>/", runs.run_detail, name="run_detail"),
    path("runs/<int:run_id>/rerun/", runs.run_rerun, name="run_rerun"),
    path("runs/<int:run_id>/live/", runs.run_live, name="run_live"),
    path("runs/<int:run_id>/live/steps/<slug:step_id>/", runs.run_step, name="run_step"),
    path("connections/", connections.connection_list, name="connection_list"),
    path(
        "connections/new/<slug:service>/", connections.connection_create, name="connection_create"
    ),
    path(
        "connections/<int:connection_id>/edit/",
        connections.connection_edit,
        name="connection_edit",
    ),
    path(
        "connections/<int:connection_id>/test/",
        connections.connection_test,
        name="connection_test",
    ),
    path(
        "connections/<int:connection_id>/delete/",
        connections.connection_delete,
        name="connection_delete",
    ),
    path("modules/", modules.module_list, name="module_list"),
    path("modules/choose/", modules.module_choose, name="module_choose"),
    path("modules/<int:artifact_id>/delete/", modules.module_delete, name="module_delete"),
    path("templates/", gallery.gallery, name="gallery"),
    path("templates/<slug:slug>/use/", gallery.template_use, name="template_use"),
]
