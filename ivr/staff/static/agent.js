const $ = (id) => document.getElementById(id);
const describe = {
  requested: () => "Requested: Twilio is moving the caller.",
  started: (d) => `Started: the caller is in the flow ${d.flow}.`,
  decision: (d) => `Decision stored: ${d.action} ${d.purpose}${d.scope === "call" ? " (for this call only)" : ""}.`,
  returning: (d) => `The caller is being connected back to ${d.to}.`,
  returned: (d) => `Returned: the call with ${d.to} ended (${d.status}).`,
  return_failed: (d) => `Could not connect the caller back (${d.status}); they were told.`,
  abandoned: (d) => `The caller hung up (at ${d.at_step}).`,
  failed: (d) => `Failed: ${d.reason}`,
};
const finalKinds = new Set(["returned", "return_failed", "abandoned", "failed"]);

function token() { return sessionStorage.getItem("ivr-agent-token"); }
function show() {
  const signedIn = Boolean(token());
  $("signed-in").hidden = !signedIn; $("transfer").hidden = !signedIn; $("token").disabled = signedIn;
}
$("signin").addEventListener("submit", (e) => { e.preventDefault(); sessionStorage.setItem("ivr-agent-token", $("token").value.trim()); $("token").value = ""; show(); });
$("signout").addEventListener("click", () => { sessionStorage.removeItem("ivr-agent-token"); show(); });

function addEvent(event) {
  const item = document.createElement("li");
  item.textContent = `${new Date(event.at).toLocaleTimeString()} — ${(describe[event.kind] || (() => event.kind))(event.detail || {})}`;
  if (finalKinds.has(event.kind)) item.className = "final";
  item.dataset.kind = event.kind;
  $("events").appendChild(item);
}

async function follow(id) {
  const response = await fetch(`/api/transfers/${id}/events`, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) { $("message").textContent = (await response.json()).error; return; }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) addEvent(JSON.parse(data));
    }
  }
}

$("transfer").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("message").textContent = "";
  const response = await fetch("/api/transfers", {
    method: "POST",
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
    body: JSON.stringify({ call_sid: $("call_sid").value.trim(), flow: $("flow").value, return_to: $("return_to").value.trim() }),
  });
  const body = await response.json();
  if (!response.ok) { $("message").textContent = `${response.status}: ${body.error}`; return; }
  $("live").hidden = false; $("transfer_id").textContent = body.transfer_id; $("events").replaceChildren();
  follow(body.transfer_id);
});
show();
