// The broker's web console (`GET /` on http.listener) in jsdom, used as a person would: the
// real page with its scripts run, polling the live broker's /api/overview.
//
//   node console.js overview BASE_URL TOPIC GROUP RECORDS
//   node console.js error BASE_URL
//
// overview:
//   1. loads BASE_URL/ and runs its scripts; the page's fetch is Node's, resolving the page's
//      relative URLs against BASE_URL (jsdom's window has no fetch on Node.js 20)
//   2. once the Topics table shows TOPIC with RECORDS records and the Consumer groups table
//      shows GROUP, clicks both rows (click events, as a mouse would) and prints the page:
//      {"phase":"clicked", ..., "internal_ticked", "internal_unticked"}, the last two the
//      topics listed after ticking the "internal topics" box and after unticking it again
//   3. reads a number T from stdin (the records after the test produced more), waits for the
//      first poll that shows TOPIC with T records and prints the page as that poll rendered it:
//      {"phase":"polled", ...}
// error: waits for the page to show an error and prints it: {"phase":"error", ...}
//
// A printed page is {"header", "error", "tables": {brokers, topics, groups}, "errors"}: each
// table a list of rows, a row the list of its cells' texts, or {"detail": rows} for the nested
// table a click opens. "errors" is what the page logged as errors or warnings and its uncaught
// exceptions. Gives up after TIMEOUT_MS: prints {"phase":"timeout", ...} with the last page seen
// and exits 1. jsdom comes from the toolbox (scripts/toolbox installs it; NODE_PATH points there).
'use strict';

const readline = require('readline');

const TIMEOUT_MS = 30000;

function main() {
  const [mode, base, topic, group, recordsArg] = process.argv.slice(2);
  const records = Number(recordsArg);
  const { JSDOM, VirtualConsole } = require('jsdom');
  const errors = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('error', (...args) => errors.push(`console.error: ${args.join(' ')}`));
  virtualConsole.on('warn', (...args) => errors.push(`console.warn: ${args.join(' ')}`));
  virtualConsole.on('jsdomError', (e) => errors.push(`jsdom: ${e.message}${e.detail ? ` (${e.detail})` : ''}`));

  let window = null;
  let last = null; // the last page seen, for a timeout's report
  const emit = (phase, page) => process.stdout.write(JSON.stringify({ phase, ...page, errors }) + '\n');
  const finish = (code) => {
    if (window) window.close();
    process.exit(code);
  };
  const timer = setTimeout(() => {
    emit('timeout', last || {});
    finish(1);
  }, TIMEOUT_MS);
  timer.unref();

  // What the page shows now.
  const snapshot = () => {
    const doc = window.document;
    const text = (id) => doc.getElementById(id).textContent;
    const rows = (table) =>
      Array.from(table.rows).map((tr) => {
        if (tr.className === 'detail') {
          const inner = tr.querySelector('table');
          return { detail: inner ? rows(inner) : [] };
        }
        return Array.from(tr.cells).map((c) => c.textContent);
      });
    const error = doc.getElementById('error');
    return {
      header: { cluster: text('cluster'), controller: text('controller'), node: text('node') },
      error: { shown: error.style.display === 'block', text: error.textContent },
      tables: {
        brokers: rows(doc.getElementById('brokers')),
        topics: rows(doc.getElementById('topics')),
        groups: rows(doc.getElementById('groups')),
      },
    };
  };
  // The <tr> whose first cell is `name` in the table `id`, or null.
  const rowOf = (id, name) =>
    Array.from(window.document.getElementById(id).rows).find(
      (tr) => tr.className === 'row' && tr.cells[0] && tr.cells[0].textContent === name,
    ) || null;
  // The records a page shows for the topic (its "records" column: the 6th), or null.
  const recordsOf = (page) => {
    const row = page.tables.topics.find((r) => Array.isArray(r) && r[0] === topic);
    return row ? Number(String(row[5]).replace(/[^0-9]/g, '')) : null;
  };
  const click = (tr) => tr.dispatchEvent(new window.MouseEvent('click', { bubbles: true, cancelable: true }));

  // The topics the Topics table lists.
  const topicsShown = () =>
    Array.from(window.document.getElementById('topics').rows)
      .filter((tr) => tr.className === 'row')
      .map((tr) => tr.cells[0].textContent);

  let phase = mode === 'error' ? 'erring' : 'loading';
  let want = null; // the records phase 3 waits for
  const seen = []; // pages rendered since the clicks (phase 3 picks the first with `want`)
  const onRender = () => {
    const page = snapshot();
    last = page;
    if (phase === 'erring') {
      if (!page.error.shown) return;
      emit('error', page);
      finish(0);
      return;
    }
    if (phase === 'loading') {
      if (recordsOf(page) !== records || !rowOf('groups', group)) return;
      click(rowOf('topics', topic));
      // The click re-rendered every table: the group's row is a new element.
      click(rowOf('groups', group));
      const clicked = snapshot();
      const internal = window.document.getElementById('internal');
      click(internal);
      const internalTicked = topicsShown();
      click(internal);
      const internalUnticked = topicsShown();
      phase = 'clicked';
      emit('clicked', { ...clicked, internal_ticked: internalTicked, internal_unticked: internalUnticked });
      return;
    }
    if (phase === 'clicked') {
      seen.push(page);
      pick();
    }
  };
  const pick = () => {
    if (want === null) return;
    const page = seen.find((p) => recordsOf(p) === want);
    if (page) {
      emit('polled', page);
      finish(0);
    }
  };

  readline.createInterface({ input: process.stdin }).once('line', (line) => {
    want = Number(line.trim());
    pick();
  });

  fetch(new URL('/', base))
    .then((r) => {
      if (!r.ok) throw new Error(`GET / answered ${r.status}`);
      return r.text();
    })
    .then((html) => {
      const dom = new JSDOM(html, {
        url: new URL('/', base).href,
        runScripts: 'dangerously',
        pretendToBeVisual: true,
        virtualConsole,
        beforeParse(w) {
          w.fetch = (input, init) => fetch(new URL(String(input), base), init);
          w.addEventListener('error', (e) => errors.push(`uncaught: ${e.message}`));
          w.addEventListener('unhandledrejection', (e) => errors.push(`unhandled rejection: ${e.reason}`));
        },
      });
      window = dom.window;
      // Every render replaces the tables' rows and the header's texts, or shows an error: look
      // at the page after each one. (The page's first poll answers after this: its scripts only
      // started it.)
      new window.MutationObserver(onRender).observe(window.document.body, {
        childList: true,
        subtree: true,
      });
    })
    .catch((e) => {
      errors.push(`driver: ${e.message}`);
      emit('failed', last || {});
      finish(1);
    });
}

main();
