// The onboarding page: shows and refreshes the WhatsApp QR, asks for a pairing code, activates
// the integration. Its settings and texts come from the page's JSON block #cfg (web/onboarding_page.py).
(() => {
  const cfg = JSON.parse(document.getElementById('cfg').textContent);
  const T = cfg.t;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let stopped = false;
  const say = (id, text) => { const el = $(id); if (el) el.textContent = text; };

  function expired() {
    stopped = true;
    clearTimeout(timer);
    for (const el of document.querySelectorAll('.live')) el.hidden = true;
    say('notice', T.expired);
    $('notice').hidden = false;
  }

  async function call(method, path, body) {
    const init = {method, cache: 'no-store',
      headers: {'Authorization': 'Bearer ' + cfg.token, 'Accept': 'application/json'}};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) { expired(); throw new Error('expired'); }
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return {status: response.status, data};
  }

  function show(data) {
    if (data.integration_status && data.integration_status !== cfg.integration_status) {
      location.reload(); return;
    }
    if (data.connected && !cfg.connected) { location.reload(); return; }
    const qr = $('qr');
    if (!qr) return;
    if (data.status === 'SCAN_QR_CODE' && data.qr_svg) {
      if (qr.dataset.qrId !== data.qr_id) {
        qr.innerHTML = data.qr_svg;
        qr.dataset.qrId = data.qr_id;
      }
      qr.hidden = false;
      $('new-code').hidden = true;
      say('qr-status', T.waiting);
    } else if (data.status === 'FAILED' || data.status === 'STOPPED') {
      qr.hidden = true;
      qr.innerHTML = '';
      qr.dataset.qrId = '';
      $('new-code').hidden = false;
      say('qr-status', T.code_expired);
    } else if (data.error === 'gateway') {
      say('qr-status', T.gateway_down);
    } else {
      say('qr-status', T.preparing);
    }
  }

  async function poll() {
    if (stopped) return;
    try {
      const {status, data} = await call('GET', '/marketplace/api/status');
      if (status === 200) show(data); else say('qr-status', T.gateway_down);
    } catch (e) {
      if (stopped) return;
      say('qr-status', T.retrying);
    }
    timer = setTimeout(poll, cfg.poll_ms);
  }

  async function requestQr(restart) {
    clearTimeout(timer);
    say('qr-status', T.preparing);
    try {
      const {status, data} = await call('POST', '/marketplace/api/qr', {restart});
      if (status === 200) show(data); else say('qr-status', T.gateway_down);
    } catch (e) {
      if (stopped) return;
      say('qr-status', T.retrying);
    }
    timer = setTimeout(poll, cfg.poll_ms);
  }

  for (const tab of document.querySelectorAll('[data-tab]')) {
    tab.addEventListener('click', () => {
      for (const other of document.querySelectorAll('[data-tab]')) {
        const selected = other === tab;
        other.setAttribute('aria-selected', String(selected));
        $(other.dataset.tab).hidden = !selected;
      }
    });
  }

  const newCode = $('new-code');
  if (newCode) newCode.addEventListener('click', () => requestQr(true));

  const pairForm = $('pair-form');
  if (pairForm) pairForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = $('pair-button');
    button.disabled = true;
    $('pair-error').hidden = true;
    try {
      const {status, data} = await call('POST', '/marketplace/api/pairing-code',
        {phone: $('pair-phone').value});
      if (status === 200 && data.code) {
        say('pair-code', data.code);
        $('pair-result').hidden = false;
      } else {
        say('pair-error', T['pair_' + (data.error || 'failed')] || T.pair_failed);
        $('pair-error').hidden = false;
      }
    } catch (e) {
      if (!stopped) { say('pair-error', T.retrying); $('pair-error').hidden = false; }
    } finally {
      button.disabled = false;
    }
  });

  const activate = $('activate');
  if (activate) activate.addEventListener('click', async () => {
    activate.disabled = true;
    $('activate-error').hidden = true;
    say('activate-status', T.activating);
    try {
      const {data} = await call('POST', '/marketplace/activate');
      if (data.ok) { location.reload(); return; }
      const text = data.message ? T.activation_failed.replace('{message}', data.message)
        : (T['activate_' + data.outcome] || T.activation_failed_plain);
      say('activate-error', text);
      $('activate-error').hidden = false;
      activate.textContent = T.try_again;
    } catch (e) {
      if (!stopped) {
        say('activate-error', T.retrying);
        $('activate-error').hidden = false;
      }
    } finally {
      activate.disabled = false;
      say('activate-status', '');
    }
  });

  if ($('qr')) requestQr(false);
})();
