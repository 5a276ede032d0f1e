/**
 * The contract between the chat page (app.ts) and its secondary views
 * (contacts.ts, profile.ts): what a view may use of the page, plus the small
 * DOM helpers those views share.
 *
 * Invariants: `client` is the page's one MissiveClient for the signed-in user
 * `me` (a view never creates, starts or stops it); a view reports every broker
 * error through `showError` (or inline) and never swallows one;
 * `openConversation` switches the page to a conversation by id (for a friend:
 * `directConvId(me, friend)`); `isOnline` reads the page's presence map
 * (false when unknown); a view passes each Relation its requests are answered
 * with to `relationChanged`. Views build their DOM with textContent only (never
 * innerHTML from broker data) and load an avatar image only from an http(s) URL.
 * Every error the page shows is worded by `describeError` ("NAME (code): message").
 */
import { ErrorCodes, MissiveError, type MissiveClient, type Relation } from "../src/index.ts";

export interface PageContext {
  client: MissiveClient;
  me: string;
  openConversation(convId: string): void;
  showError(e: unknown): void;
  isOnline(userId: string): boolean;
  /**
   * A Relation a view's own request was answered with (the requesting
   * connection gets no `relation` push for it): lets the page update the names
   * it shows (remarks).
   */
  relationChanged?(r: Relation): void;
}

/** What a mounted view gives back: `refresh` re-reads from the broker, `dispose` removes listeners and DOM. */
export interface MountedView {
  refresh(): void;
  dispose(): void;
}

// ------------------------------------------------------------------ shared view helpers

/**
 * The spec's name of an error code (section 10, e.g. `BLOCKED_BY_USER`); a code
 * not in the table is named by its range ([E-1]).
 */
export function codeName(code: number): string {
  const known = Object.entries(ErrorCodes).find(([, v]) => v === code)?.[0];
  if (known) return known;
  return code < 2000 ? "CONNECTION_ERROR" : code < 3000 ? "AUTH_ERROR" : code < 4000 ? "INVALID_REQUEST" : code < 5000 ? "REFUSED" : "SERVER_ERROR";
}

/**
 * The page's one wording of an error (chat, groups, Contacts and Me alike): a
 * broker error as "NAME (code): message"; a local one (code 0: not connected,
 * a timeout) as its message, with a hint when retrying may help; anything else
 * as its message.
 */
export function describeError(e: unknown): string {
  if (e instanceof MissiveError) {
    if (e.code === 0) return e.retryable ? `${e.message} — check the connection and try again` : e.message;
    return `${codeName(e.code)} (${e.code}): ${e.message}`;
  }
  return String((e as Error)?.message ?? e);
}

type Child = Node | string | undefined | null | false;

/** Creates an element with properties / attributes (`data-*`, `aria-*` as attributes) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, unknown> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "testid") e.dataset.testid = String(v);
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "for") e.setAttribute(k, String(v));
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v as EventListener);
    else (e as unknown as Record<string, unknown>)[k] = v;
  }
  for (const c of children) if (c !== undefined && c !== null && c !== false) e.append(c);
  return e;
}

/** A button with a visible text, an accessible label and a test id. */
export function btn(text: string, label: string, testid: string, onClick: () => void, className = ""): HTMLButtonElement {
  return h("button", { type: "button", className, textContent: text, "aria-label": label, title: label, testid, onclick: onClick });
}

/** Only http(s) URLs are loaded (never javascript: or data:). */
export function safeUrl(u: string | undefined): string | undefined {
  if (!u) return undefined;
  try {
    const url = new URL(u, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}

const palette = ["#4f46e5", "#0891b2", "#db2777", "#059669", "#d97706", "#7c3aed", "#dc2626", "#2563eb"];

/**
 * An avatar: the profile's image when it has an http(s) URL, else the initial on a
 * colour derived from the user id; with a presence dot when `online` is given.
 */
export function avatarOf(userId: string, name: string, avatarUrl: string | undefined, online: boolean | undefined, testid?: string): HTMLElement {
  let hsh = 0;
  for (const ch of userId) hsh = (hsh * 31 + ch.charCodeAt(0)) >>> 0;
  const a = h("span", { className: "ct-avatar", "aria-hidden": "true" });
  a.style.background = palette[hsh % palette.length];
  const url = safeUrl(avatarUrl);
  if (url) a.append(h("img", { src: url, alt: "", loading: "lazy", referrerPolicy: "no-referrer" }));
  else a.textContent = (name || userId).slice(0, 1).toUpperCase() || "?";
  if (online !== undefined) {
    a.append(
      h("span", {
        className: `ct-dot${online ? " on" : ""}`,
        testid: testid ?? `presence-dot-${userId}`,
        "data-online": String(online),
      }),
    );
  }
  return a;
}

/** Links contacts.css once unless the page does (build.mjs copies it next to index.html). */
export function ensureStyles() {
  if (document.querySelector('link[href$="contacts.css"]')) return;
  document.head.append(h("link", { rel: "stylesheet", href: "contacts.css", "data-missive": "contacts.css" }));
}

/** A live region for a view's errors (role=alert) and one for its confirmations (role=status). */
export function messageAreas(prefix: string): { error: HTMLElement; status: HTMLElement; fail(e: unknown, what?: string): void; ok(text: string): void; clear(): void } {
  const error = h("p", { className: "ct-error", role: "alert", testid: `${prefix}-error` });
  const status = h("p", { className: "ct-status", role: "status", testid: `${prefix}-status` });
  return {
    error,
    status,
    fail(e, what) {
      status.textContent = "";
      error.textContent = what ? `${what}: ${describeError(e)}` : describeError(e);
    },
    ok(text) {
      error.textContent = "";
      status.textContent = text;
    },
    clear() {
      error.textContent = "";
      status.textContent = "";
    },
  };
}

/** Splits `ids` into chunks of at most `n` (batch requests take 1..=100 ids). */
export function chunks<T>(ids: T[], n = 100): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < ids.length; i += n) out.push(ids.slice(i, i + n));
  return out;
}

/** A user-id check matching the login form's pattern ([I-1] leaves the final word to the broker). */
export const USER_ID_PATTERN = "[A-Za-z0-9_.@\\-]{1,64}";
