// The demo page (web/demo/page.py): two chats with the bot and the salon's YClients panel,
// over the JSON API under /demo/api/ (README "The demo"). The chats are drawn from the log
// (GET /demo/api/messages, a long poll), so answers and notices arrive the same way.
'use strict';
(() => {
  const cfg = JSON.parse(document.getElementById('cfg').textContent);
  const t = cfg.t;
  const panes = {};
  document.querySelectorAll('.chat').forEach((pane) => {
    panes[pane.dataset.role] = {
      pane,
      log: pane.querySelector('.log'),
      keys: pane.querySelector('.keys'),
      form: pane.querySelector('.say'),
      started: false,
    };
  });
  let last = 0;

  async function post(path, body) {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    return answer;
  }

  function button(label, onClick, className) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    if (className) b.className = className;
    b.addEventListener('click', onClick);
    return b;
  }

  async function send(role, text) {
    try {
      await post('/demo/api/message', { role, text });
    } catch (error) {
      bubble(panes[role], { from: 'bot', text: `${t.sent_failed} (${error.message})` });
    }
  }

  function showKeys(chat, rows) {
    chat.keys.replaceChildren();
    for (const labels of rows) {
      const row = document.createElement('div');
      row.className = 'row';
      for (const label of labels) row.append(button(label, () => send(chat.pane.dataset.role, label)));
      chat.keys.append(row);
    }
  }

  function bubble(chat, message) {
    const div = document.createElement('div');
    div.className = `msg ${message.from === 'visitor' ? 'visitor' : 'bot'}`;
    if (message.notice) {
      div.classList.add('notice');
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = t.notice;
      div.append(tag);
    }
    div.append(document.createTextNode(message.text));
    if (message.image) {
      const img = document.createElement('img');
      img.src = message.image;
      img.alt = message.text;
      div.append(img);
    }
    const choices = document.createElement('div');
    choices.className = 'choices';
    const role = chat.pane.dataset.role;
    for (const label of message.buttons || []) choices.append(button(label, () => send(role, label)));
    for (const link of message.links || []) {
      const a = document.createElement('a');
      a.href = link.url;
      a.textContent = link.text;
      a.target = '_blank';
      a.rel = 'noopener';
      choices.append(a);
    }
    if (choices.childElementCount) div.append(choices);
    chat.log.append(div);
    chat.log.scrollTop = chat.log.scrollHeight;
  }

  function show(message) {
    const chat = panes[message.role];
    if (!chat) return;
    chat.started = true;
    bubble(chat, message);
    if (message.menu) showKeys(chat, message.menu);
  }

  async function poll(wait) {
    const response = await fetch(`/demo/api/messages?after=${last}&wait=${wait}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const answer = await response.json();
    for (const message of answer.messages) {
      if (message.id > last) {
        last = message.id;
        show(message);
      }
    }
  }

  async function follow() {
    for (;;) {
      try {
        await poll(25);
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }

  for (const [role, chat] of Object.entries(panes)) {
    chat.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const input = chat.form.elements.text;
      const text = input.value.trim();
      if (!text) return;
      input.value = '';
      send(role, text);
    });
  }

  // --- the salon's side: YClients ---
  const visit = document.getElementById('visit');
  const acted = document.getElementById('acted');

  function describe(v) {
    if (!v) return t.no_visit;
    const when = new Intl.DateTimeFormat(cfg.locale, {
      timeZone: cfg.timezone, weekday: 'short', day: 'numeric', month: 'long',
      hour: '2-digit', minute: '2-digit',
    }).format(new Date(v.datetime));
    const cost = new Intl.NumberFormat(cfg.locale).format(v.cost);
    return `${when} · ${v.services} · ${v.master} · ${cost} ₽ (${t.status[v.status] || v.status})`;
  }

  async function loadVisit() {
    const response = await fetch('/demo/api/yclients');
    if (response.ok) visit.textContent = describe((await response.json()).next_visit);
  }

  document.querySelectorAll('#yclients [data-action]').forEach((b) => {
    b.addEventListener('click', async () => {
      const action = b.dataset.action;
      b.disabled = true;
      acted.classList.remove('error');
      try {
        const answer = await post('/demo/api/yclients', { action });
        acted.textContent = t.acted[action];
        visit.textContent = describe(answer.next_visit);
      } catch (error) {
        acted.classList.add('error');
        acted.textContent = t.act_failed.replace('{error}', error.message);
      } finally {
        b.disabled = false;
      }
    });
  });

  (async () => {
    try {
      await poll(0);
    } catch (error) { /* the long poll below retries */ }
    for (const [role, chat] of Object.entries(panes)) {
      if (!chat.started) {
        chat.keys.replaceChildren(button(t.start, () => send(role, '/start'), 'start'));
      }
    }
    loadVisit();
    follow();
  })();
})();
