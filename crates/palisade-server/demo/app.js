// The demo: log in (an HttpOnly cookie session), join rooms, chat, answer a
// quiz and upload a file name through @palisade/client, and fire the
// attacks of the attack panel. Every string from the server or a user is
// put in the page as text (dom.js's `el`), never as HTML.

import { PalisadeClient } from "./palisade/index.js";
import { el } from "./dom.js";
import { socketUrl } from "./raw.js";
import { ATTACKS } from "./attacks.js";

const ROOMS = ["lobby", "course:demo"];
const QUIZ = [
  { id: "q1", text: "Which check runs first on a message?", choices: ["schema", "frame size", "CSRF", "sanitizers"] },
  { id: "q2", text: "What does a refused replay cost the sender?", choices: ["nothing", "its nonce", "a ban", "a reconnect"] },
];
const $ = (selector) => document.querySelector(selector);
const status = (text) => ($("#status").textContent = text);

let client;

/** Appends a line to a list, keeping the newest 200. */
function line(list, item) {
  list.append(item);
  while (list.children.length > 200) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

async function logIn(form) {
  const body = Object.fromEntries(new FormData(form));
  const answer = await fetch("/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: body.username, password: body.password, cookie: true }),
  });
  if (!answer.ok) {
    status(answer.status === 401 ? "wrong user or password" : `login refused (${answer.status})`);
    return;
  }
  form.reset();
  status("");
  await start();
}

async function start() {
  client = new PalisadeClient(socketUrl(), {
    cookie: true,
    // The page cannot read its token: renewing is the cookie's refresh.
    getToken: () => fetch("/auth/refresh", { method: "POST" }),
  });
  client.on("state", (s) => ($("#state").textContent = s));
  client.on("welcome", (w) => {
    $("#user").textContent = w.user.name ?? w.user.id;
    $("#roles").textContent = w.user.roles.join(", ");
  });
  client.on("error", (e) => status(`${e.code}: ${e.message}`));
  for (const room of ROOMS) {
    client.onEvent(room, "chat.message", (data, meta) => {
      const from = meta.from.name ?? meta.from.id;
      const item = el("li", { dataset: { from: meta.from.id } }, el("span", { class: "room" }, room), el("span", { class: "from" }, from), data.content);
      line($("#messages"), item);
    });
  }
  client.onEvent("course:demo", "quiz.answer", (data, meta) => {
    const from = meta.from.name ?? meta.from.id;
    line($("#answers"), el("li", {}, el("span", { class: "from" }, from), `answered ${data.questionId}: ${JSON.stringify(data.answer)}`));
  });
  client.onEvent("course:demo", "file.upload", (data, meta) => {
    const from = meta.from.name ?? meta.from.id;
    line($("#files"), el("li", { dataset: { name: data.name } }, el("span", { class: "from" }, from), `${data.name} (${data.size} bytes, ${data.mime})`));
  });
  await client.connect();
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#who").hidden = false;
  renderRooms();
  renderQuiz();
  renderAttacks();
  for (const room of ROOMS) await join(room);
}

async function join(room) {
  const button = $(`#rooms button[data-room="${room}"]`);
  try {
    await client.join(room);
    button.setAttribute("aria-pressed", "true");
    const select = $("#say select[name=room]");
    if (![...select.options].some((o) => o.value === room)) select.append(el("option", { value: room }, room));
  } catch (e) {
    status(`join ${room}: ${e.code}`);
  }
}

function renderRooms() {
  $("#rooms").replaceChildren(...ROOMS.map((room) => el("button", { type: "button", dataset: { room }, "aria-pressed": "false", onclick: () => join(room) }, room)));
}

/** A refused request, as a line of the list it would have gone to. */
function refused(list, what, e) {
  line(list, el("li", { class: "refused", dataset: { code: e.code ?? "" } }, `${what} refused: ${e.code ?? e.message}`));
}

async function say(form) {
  const { room, content } = Object.fromEntries(new FormData(form));
  try {
    await client.publish(room, "chat.message", { content });
    form.elements.content.value = "";
  } catch (e) {
    refused($("#messages"), "message", e);
  }
}

function renderQuiz() {
  $("#quiz").replaceChildren(
    ...QUIZ.map((q) =>
      el(
        "p",
        { dataset: { question: q.id } },
        el("span", {}, `${q.text} `),
        q.choices.map((choice, answer) =>
          el("button", { type: "button", dataset: { answer }, onclick: () => answerQuiz(q.id, answer) }, choice),
        ),
      ),
    ),
  );
}

async function answerQuiz(questionId, answer) {
  try {
    await client.publish("course:demo", "quiz.answer", { sessionId: "demo", questionId, answer });
  } catch (e) {
    refused($("#answers"), "answer", e);
  }
}

async function upload(form) {
  const { name, size, mime } = Object.fromEntries(new FormData(form));
  try {
    await client.publish("course:demo", "file.upload", { name, size: Number(size), mime });
  } catch (e) {
    refused($("#files"), `upload of ${name}`, e);
  }
}

/** Cross-origin: the sandboxed frame connects and reports. */
function foreign() {
  const frame = $("#foreign");
  return new Promise((resolve) => {
    const heard = (e) => {
      if (e.source !== frame.contentWindow || e.data?.kind !== "foreign") return;
      window.removeEventListener("message", heard);
      const code = String(e.data.code);
      resolve(
        e.data.opened
          ? { code: "open", detail: "the socket opened: Origin null is allowed (origins.allow)" }
          : { code, detail: `refused before the upgrade: the browser reports close ${code} and hides the status (the server's is 403, an origin refusal in the dashboard)` },
      );
    };
    window.addEventListener("message", heard);
    frame.src = `/demo/foreign.html?${Date.now()}`;
  });
}

function renderAttacks() {
  $("#attack-rows").replaceChildren(
    ...ATTACKS.map((attack) => {
      const answer = el("td", { class: "answer", "data-testid": `answer-${attack.key}` }, "not fired");
      const fire = async () => {
        delete answer.dataset.code;
        answer.textContent = "…";
        answer.className = "answer";
        try {
          const { code, detail } = await attack.run({ client, foreign });
          answer.dataset.code = code;
          answer.textContent = detail;
          answer.classList.add("refused");
        } catch (e) {
          answer.dataset.code = "failed";
          answer.textContent = `could not run: ${e.message}`;
          answer.classList.add("failed");
        }
      };
      return el(
        "tr",
        { dataset: { attack: attack.key } },
        el("td", {}, el("button", { type: "button", dataset: { fire: attack.key }, onclick: fire }, attack.name)),
        el("td", { class: "hint" }, attack.what),
        answer,
      );
    }),
  );
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  logIn(e.target).catch((err) => status(err.message));
});
$("#say").addEventListener("submit", (e) => {
  e.preventDefault();
  say(e.target);
});
$("#upload").addEventListener("submit", (e) => {
  e.preventDefault();
  upload(e.target);
});
$("#logout").addEventListener("click", async () => {
  client?.close();
  await fetch("/auth/logout", { method: "POST" });
  location.reload();
});
