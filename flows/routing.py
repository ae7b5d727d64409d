from django.urls import path

from flows import consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/flows/<int:flow_id>/", consumers.FlowConsumer.as_asgi()),
]
