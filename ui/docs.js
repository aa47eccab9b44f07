// The API docs page (/docs, ui/docs.html). RapiDoc's spec-url would fetch /openapi.json
// without a header, and a server with [auth] gives it to an admin token only: this file
// fetches it with the token the dashboard keeps in this tab's sessionStorage (same
// origin, so the same storage) and hands the object to RapiDoc's loadSpec(). Without a
// token, or without [auth], the fetch is a plain one and the page is as before.
'use strict';

(() => {
  const TOKEN_KEY = 'offload.token'; // ui/app.js keeps it there

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  // Instead of the reference: why it is not there, and the way to the sign-in form.
  function refuse(text, needsToken = true) {
    const doc = document.querySelector('rapi-doc');
    if (doc) doc.style.display = 'none'; // its own :host style would win over [hidden]
    document.querySelector('[data-testid="docs-auth-text"]').textContent = text;
    document.querySelector('[data-part="sign-in"]').hidden = !needsToken;
    document.querySelector('[data-testid="docs-auth"]').hidden = false;
  }

  async function load() {
    const held = token();
    const headers = { Accept: 'application/json' };
    if (held) headers.Authorization = 'Bearer ' + held;
    let res;
    try {
      res = await fetch('/openapi.json', { headers });
    } catch (e) {
      refuse(`The server does not answer (${e.message}).`, false);
      return;
    }
    if (res.status === 401 || res.status === 403) {
      const problem = await res.json().catch(() => null);
      const why = problem && problem.detail ? ` (${problem.detail})` : '';
      if (res.status === 403) refuse(`The API description is for an admin token; the one this tab holds is not one${why}.`);
      else if (held) refuse(`The server does not take the token this tab holds${why}.`);
      else refuse('This server describes its API to an admin token only, and this tab holds none.');
      return;
    }
    let spec;
    try {
      if (!res.ok) throw new Error(`GET /openapi.json answered ${res.status}`);
      spec = await res.json();
    } catch (e) {
      refuse(e.message, false);
      return;
    }
    await customElements.whenDefined('rapi-doc');
    document.querySelector('rapi-doc').loadSpec(spec);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', load);
  else load();
})();
