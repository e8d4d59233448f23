"""Pages of agents (agents/) and credentials (credentials/); the REST endpoints are in api/urls.py."""

from django.urls import path

from apps.agents import chat, credential_pages, pages

app_name = "agents"

urlpatterns: list = [
    # The agents pages and their streaming test chat (apps/agents/pages.py, chat.py).
    path("agents/", pages.agent_list, name="agent_list"),
    path("agents/new/", pages.agent_create, name="agent_create"),
    path("agents/<int:pk>/", pages.agent_edit, name="agent_edit"),
    path("agents/<int:pk>/delete/", pages.agent_delete, name="agent_delete"),
    path("agents/<int:pk>/chat/", pages.agent_chat, name="agent_chat"),
    path("agents/<int:pk>/chat/stream/", chat.agent_chat_stream, name="agent_chat_stream"),
]

# The credentials pages: credential_list, credential_create, credential_secret, credential_delete.
urlpatterns += credential_pages.urlpatterns
