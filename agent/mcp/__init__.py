"""The MCP server: one executor (a browser or the desktop) offered as tools to any MCP client.

    session  GuiSession: each call checked by the SafetyPolicy, carried out, recorded as a Step
    server   the tools on the `mcp` SDK's MCPServer, over stdio or streamable HTTP

`internvl-agent mcp` (agent/cli/mcp.py) starts it. `server` imports the SDK, an extra:
pip install 'internvl-agent[mcp]'.
"""

from agent.mcp.session import GuiSession, Refused, Shot

__all__ = ["GuiSession", "Refused", "Shot"]
