// A worker of offsite-strict.html (an allowed script) that asks the refused origin for data
// and opens a WebSocket there.
const offsite = "{{offsite}}";
fetch(offsite + "/offsite-data.txt").then(r => r.text()).then(
  t => postMessage(["worker-fetch", t.trim()]), () => postMessage(["worker-fetch", "error"]));
const socket = new WebSocket(offsite.replace(/^http/, "ws") + "/ws");
socket.onmessage = event => postMessage(["worker-websocket", "message " + event.data]);
socket.onerror = () => postMessage(["worker-websocket", "error"]);
