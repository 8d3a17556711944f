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
  // Default wait when posbridge refuses this address (429) without saying how long.
  const BLOCKED_RETRY_S = 60;

  // What the sale is: the amount as its currency writes it, credit or debit (and the
  // installments), the terminal. Every `state` event carries it (older feeds do not).
  function showSale(event) {
    if (event.amountText) $("amount").textContent = event.amountText;
    if (event.method) {
      const method = event.method === "debit" ? "Debit" : "Credit";
      $("method").textContent = event.installments > 1
        ? method + " · " + event.installments + " installments" : method;
    }
    if (event.terminal) $("terminal").textContent = "Terminal " + event.terminal;
  }

  function show(event) {
    if (typeof event.seq === "number") lastSeq = Math.max(lastSeq, event.seq);
    const item = document.createElement("li");
    if (event.type === "state") {
      showSale(event);
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
      // Nothing is left to cancel: a cancel now would be a refund, not this page's job.
      $("cancel").disabled = true;
      $("cancel").hidden = true;
      item.textContent = "result: " + event.status;
    } else if (event.type === "error") {
      $("error").textContent = event.message || event.code;
      item.textContent = "error: " + (event.code || "");
    } else {
      return;
    }
    $("log").appendChild(item);
  }

  // For good: this feed will never take the page. Says why; tries nothing more.
  function stop(why) {
    $("connection").textContent = "stopped";
    $("prompt").textContent = "";
    $("error").textContent = why;
    $("cancel").disabled = true;
    $("cancel").hidden = true;
  }

  function reconnect(afterMs, status) {
    $("connection").textContent = status || "reconnecting…";
    setTimeout(connect, afterMs);
  }

  function backoffMs() {
    retries += 1;
    return Math.min(500 * retries, 5000);
  }

  // Why a connection failed before it opened. A WebSocket never sees the HTTP status of a
  // refused handshake (only close code 1006), and every refused attempt counts against the
  // store's address: a page that retried blindly locked every lane behind it out (429).
  // posbridge checks the token before the upgrade, so a plain GET of the same URL gets the
  // same answer with its status. 0: posbridge is out of reach.
  async function refusal(url) {
    const http = new URL(url);
    http.protocol = { "ws:": "http:", "wss:": "https:" }[http.protocol] || http.protocol;
    try {
      const answer = await fetch(http.toString(),
        { cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
      return { status: answer.status, retryAfterS: Number(answer.headers.get("Retry-After")) };
    } catch (e) {
      return { status: 0 };
    }
  }

  async function onRefused(url) {
    const { status, retryAfterS } = await refusal(url);
    if (status === 403 || status === 404) {
      stop("This payment's live feed is no longer available (the link is wrong or has " +
        "expired). Close this page.");
    } else if (status === 410) {
      stop("This payment is over and its live feed has closed. Close this page.");
    } else if (status === 429) {
      // Too many wrong links from this address (not ours); attempts while blocked add none.
      const waitS = Math.min(Math.max(retryAfterS || BLOCKED_RETRY_S, 1), 600);
      reconnect(waitS * 1000, "blocked; retrying in " + waitS + " s");
    } else {
      // Network trouble, posbridge restarting (5xx), or the feed was fine after all.
      reconnect(backoffMs());
    }
  }

  function connect() {
    if (!wsUrl) {
      $("connection").textContent = "no wsUrl given";
      return;
    }
    const url = new URL(wsUrl);
    if (lastSeq > 0) url.searchParams.set("after", String(lastSeq));
    let opened = false;
    socket = new WebSocket(url.toString());
    socket.onopen = () => {
      opened = true;
      retries = 0;
      $("connection").textContent = "live";
    };
    socket.onmessage = (m) => {
      try { show(JSON.parse(m.data)); } catch (e) { /* not ours */ }
    };
    socket.onclose = (e) => {
      socket = null;
      if (finished || e.code === 1000) {
        $("connection").textContent = "done";
        return;
      }
      if (opened) {
        // 1013 (fell behind), 1001 (server restarting), network trouble: resume after lastSeq.
        reconnect(backoffMs());
      } else {
        onRefused(url);
      }
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
