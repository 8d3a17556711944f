// posbridge reference Payment App: follows one payment's live feed and offers a cancel.
// Open it as /payment-app/?wsUrl=<the wsUrl from the payment app payload, URL-encoded>.
// A partner's app can start from this file: no framework, no build step.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const wsUrl = new URLSearchParams(location.search).get("wsUrl");
  let lastSeq = 0;
  let finished = false;
  let socket = null;
  let retries = 0;

  function show(event) {
    if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
    const item = document.createElement("li");
    if (event.type === "state") {
      $("state").textContent = event.state;
      item.textContent = "state: " + event.state;
    } else if (event.type === "prompt") {
      $("prompt").textContent = event.text;
      item.textContent = event.text;
    } else if (event.type === "result") {
      finished = true;
      const approved = event.status === "approved";
      const card = [event.cardBrand, event.lastDigits ? "•••• " + event.lastDigits : null]
        .filter(Boolean).join(" ");
      $("result").className = approved ? "approved" : "denied";
      $("result").textContent = (approved ? "Approved" : "Not approved") +
        (card ? " · " + card : "") + (event.message && !approved ? " · " + event.message : "");
      $("state").textContent = event.state;
      $("prompt").textContent = "";
      $("cancel").disabled = true;
      $("cancel").textContent = "Cancel";
      item.textContent = "result: " + event.status;
    } else if (event.type === "error") {
      $("error").textContent = event.message || event.code;
      item.textContent = "error: " + (event.code || "");
    } else {
      return;
    }
    $("log").appendChild(item);
  }

  function connect() {
    if (!wsUrl) {
      $("connection").textContent = "no wsUrl given";
      return;
    }
    const url = new URL(wsUrl);
    if (lastSeq > 0) url.searchParams.set("after", String(lastSeq));
    socket = new WebSocket(url.toString());
    socket.onopen = () => { retries = 0; $("connection").textContent = "live"; };
    socket.onmessage = (m) => {
      try { show(JSON.parse(m.data)); } catch (e) { /* not ours */ }
    };
    socket.onclose = (e) => {
      socket = null;
      if (finished || e.code === 1000) {
        $("connection").textContent = "done";
        return;
      }
      // 1013 (fell behind), 1001 (server restarting), network trouble: resume after lastSeq.
      $("connection").textContent = "reconnecting…";
      retries += 1;
      setTimeout(connect, Math.min(500 * retries, 5000));
    };
  }

  $("cancel").addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "cancel" }));
      $("cancel").disabled = true;
      $("cancel").textContent = "Cancelling…";
    }
  });

  connect();
})();
