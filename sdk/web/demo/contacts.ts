/**
 * The Contacts view of the chat page (spec 12 and 13): friend list with remark
 * or nickname, presence dot and custom status (a click opens the 1:1 chat);
 * friend requests received and sent with their message, accept or reject with
 * an optional remark; adding a friend by user id with a request message after
 * looking the user up (existence, profile, add-friend policy, relation);
 * remark editing, deletion (one side or both), friend search; the blacklist
 * (list, add, remove). Also the shared `contactsStore` the Me view reads.
 *
 * Invariants: the store holds the broker's current view and changes only from
 * a broker answer or push (`relation`, `profile`, `presence` events, or the
 * Relation a request returns), never optimistically; it reloads on every
 * (re)connect since presence pushes are best effort ([PS-4]). Every failed
 * request is shown (inline alert) as "NAME (code): message" (describeError).
 * The view builds its DOM inside `root` only, with textContent (never markup
 * from broker data); re-renders keep the focused control (by data-testid)
 * and typed drafts.
 */
import {
  AddFriendStatus,
  FriendVerification,
  RequestState,
  directConvId,
  type FriendRequest,
  type MissiveClient,
  type Presence,
  type Profile,
  type Relation,
} from "../src/index.ts";
import { avatarOf, btn, chunks, ensureStyles, h, messageAreas, USER_ID_PATTERN, type PageContext } from "./context.ts";

// ------------------------------------------------------------------ the shared store

/** What changed, for listeners that re-render only some parts. */
export type StoreChange = "friends" | "requests" | "blacklist" | "profiles" | "presence" | "loaded";

export interface ContactsStore {
  readonly client: MissiveClient;
  readonly me: string;
  /** The caller's friend list: Relation by friend id. */
  readonly friends: Map<string, Relation>;
  /** Profiles known (friends, requesters, blocked users, me). */
  readonly profiles: Map<string, Profile>;
  /** Presence of subscribed users and me. */
  readonly presence: Map<string, Presence>;
  /** Latest request from each other user (every state), by sender. */
  readonly incoming: Map<string, FriendRequest>;
  /** Latest request to each other user (every state), by target. */
  readonly outgoing: Map<string, FriendRequest>;
  /** Blacklisted users: since (unix ms). */
  readonly blocked: Map<string, bigint>;
  loaded: boolean;
  /** Re-reads everything from the broker (concurrent calls share one load). */
  load(): Promise<void>;
  /** Applies the caller's current view of one relation (from a response or a push). */
  apply(r: Relation): void;
  /** Fetches the profiles not yet known. */
  ensureProfiles(ids: string[]): Promise<void>;
  /** Subscribes a view; returns its detach. The store lives while a view is attached. */
  attach(onChange: (c: StoreChange) => void, onError: (e: unknown, what: string) => void): () => void;
}

const stores = new WeakMap<MissiveClient, ContactsStore>();

/** The store of `client` (one per client, shared by the Contacts and Me views). */
export function contactsStore(client: MissiveClient, me: string): ContactsStore {
  const held = stores.get(client);
  if (held && held.me === me) return held;
  const views = new Set<{ onChange: (c: StoreChange) => void; onError: (e: unknown, what: string) => void }>();
  let offs: (() => void)[] = [];
  let loading: Promise<void> | undefined;
  let again = false;

  const changed = (c: StoreChange) => views.forEach((v) => v.onChange(c));
  const failed = (e: unknown, what: string) => views.forEach((v) => v.onError(e, what));

  async function pages<T>(fetch: (cursor: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
    const out: T[] = [];
    let cursor = "";
    for (let i = 0; i < 100; i++) {
      const p = await fetch(cursor);
      out.push(...p.items);
      if (!p.next) break;
      cursor = p.next;
    }
    return out;
  }

  async function subscribe(ids: string[]) {
    const others = ids.filter((u) => u !== me);
    for (const c of chunks(others)) {
      for (const p of await client.subscribePresence(c)) s.presence.set(p.userId, p);
    }
  }

  async function loadOnce() {
    const friendList = await pages(async (cursor) => {
      const r = await client.listFriends({ cursor, withProfiles: true });
      for (const p of r.profiles) s.profiles.set(p.userId, p);
      return { items: r.friends, next: r.nextCursor };
    });
    const inc = await pages(async (cursor) => {
      const r = await client.listFriendRequests({ outgoing: false, cursor });
      return { items: r.requests, next: r.nextCursor };
    });
    const out = await pages(async (cursor) => {
      const r = await client.listFriendRequests({ outgoing: true, cursor });
      return { items: r.requests, next: r.nextCursor };
    });
    const black = await pages(async (cursor) => {
      const r = await client.listBlacklist({ cursor });
      return { items: r.users, next: r.nextCursor };
    });
    s.friends.clear();
    for (const f of friendList) s.friends.set(f.userId, f);
    s.incoming.clear();
    for (const r of inc) s.incoming.set(r.fromUser, r);
    s.outgoing.clear();
    for (const r of out) s.outgoing.set(r.toUser, r);
    s.blocked.clear();
    for (const b of black) s.blocked.set(b.userId, b.sinceMs);
    s.loaded = true;
    changed("loaded");
    // My own profile is always re-read: another device may have changed it while this one was away.
    for (const p of (await client.getProfiles({ userIds: [me] })).profiles) s.profiles.set(p.userId, p);
    await s.ensureProfiles([...s.incoming.keys(), ...s.outgoing.keys(), ...s.blocked.keys()]);
    changed("profiles");
    const mine = await client.getPresence({ userIds: [me] });
    for (const p of mine.presences) s.presence.set(p.userId, p);
    await subscribe([...s.friends.keys()]);
    changed("presence");
  }

  const s: ContactsStore = {
    client,
    me,
    friends: new Map(),
    profiles: new Map(),
    presence: new Map(),
    incoming: new Map(),
    outgoing: new Map(),
    blocked: new Map(),
    loaded: false,
    load() {
      if (loading) {
        again = true; // a change may have raced the running load: read once more after it
        return loading;
      }
      loading = (async () => {
        try {
          for (let round = 0; round < 3; round++) {
            again = false;
            await loadOnce();
            if (!again) break;
          }
        } finally {
          loading = undefined;
        }
      })();
      return loading;
    },
    apply(r) {
      const u = r.userId;
      const wasFriend = s.friends.has(u);
      if (r.isFriend) s.friends.set(u, r);
      else s.friends.delete(u);
      if (r.incoming?.fromUser) s.incoming.set(u, r.incoming);
      else s.incoming.delete(u);
      if (r.outgoing?.toUser) s.outgoing.set(u, r.outgoing);
      else s.outgoing.delete(u);
      if (r.blocked) s.blocked.set(u, r.blockedSinceMs);
      else s.blocked.delete(u);
      changed("friends");
      changed("requests");
      changed("blacklist");
      // During (or before) a full load, the load fetches profiles and presence for every
      // user (a sync right after connecting pushes every relation): read once more after it
      // instead of one request per user.
      if (loading) again = true;
      if (loading || !s.loaded) return;
      if (!s.profiles.has(u)) s.ensureProfiles([u]).catch((e) => failed(e, `Could not load ${u}'s profile`));
      if (r.isFriend && !wasFriend) {
        subscribe([u]).then(
          () => changed("presence"),
          (e) => failed(e, `Could not follow ${u}'s presence`),
        );
      }
    },
    async ensureProfiles(ids) {
      const missing = [...new Set(ids)].filter((u) => u && !s.profiles.has(u));
      for (const c of chunks(missing)) {
        const r = await client.getProfiles({ userIds: c });
        for (const p of r.profiles) s.profiles.set(p.userId, p);
      }
      if (missing.length) changed("profiles");
    },
    attach(onChange, onError) {
      const v = { onChange, onError };
      views.add(v);
      if (views.size === 1) {
        offs = [
          client.on("relation", (r) => s.apply(r)),
          client.on("profile", (p) => {
            s.profiles.set(p.userId, p);
            changed("profiles");
          }),
          client.on("presence", (p) => {
            s.presence.set(p.userId, p);
            changed("presence");
          }),
          client.on("state", (st) => {
            if (st === "online") s.load().catch((e) => failed(e, "Could not load contacts"));
          }),
        ];
      }
      return () => {
        views.delete(v);
        if (views.size === 0) {
          offs.forEach((off) => off());
          offs = [];
          stores.delete(client);
        }
      };
    },
  };
  stores.set(client, s);
  return s;
}

// ------------------------------------------------------------------ presentation helpers

/** The name to show: my remark for the user, else their nickname, else their id. */
export function nameOf(s: ContactsStore, userId: string): string {
  return s.friends.get(userId)?.remark || s.profiles.get(userId)?.nickname || userId;
}

/** Online as the store knows it (subscription), else as the page knows it. */
export function onlineOf(s: ContactsStore, ctx: PageContext, userId: string): boolean {
  const p = s.presence.get(userId);
  return p ? p.online : ctx.isOnline(userId);
}

export function policyText(v: FriendVerification): string {
  switch (v) {
    case FriendVerification.ALLOW_ANYONE:
      return "Anyone can add them directly";
    case FriendVerification.DENY_ALL:
      return "Not accepting friend requests";
    default:
      return "Approves each friend request";
  }
}

function dateOf(ms: bigint): string {
  if (!ms) return "";
  const d = new Date(Number(ms));
  return new Date().toDateString() === d.toDateString()
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString();
}

function stateText(r: FriendRequest, outgoing: boolean): string {
  switch (r.state) {
    case RequestState.PENDING:
      return outgoing ? "Waiting for approval" : "Pending";
    case RequestState.ACCEPTED:
      return "Accepted";
    case RequestState.REJECTED:
      return "Rejected";
    default:
      return "";
  }
}

/** Keeps the focused control (by data-testid) and the caret across a re-render of `box`. */
export function keepFocus(box: HTMLElement, render: () => void) {
  const a = document.activeElement;
  const id = a instanceof HTMLElement && box.contains(a) ? a.dataset.testid : undefined;
  const caret = a instanceof HTMLInputElement ? a.selectionStart : null;
  render();
  if (!id) return;
  const next = box.querySelector<HTMLElement>(`[data-testid="${CSS.escape(id)}"]`);
  if (next) {
    next.focus();
    if (next instanceof HTMLInputElement && caret !== null) next.setSelectionRange(caret, caret);
  }
}

// ------------------------------------------------------------------ the view

export function mountContacts(root: HTMLElement, ctx: PageContext): { refresh(): void; dispose(): void } {
  ensureStyles();
  const { client, me } = ctx;
  const s = contactsStore(client, me);
  /** A Relation answered to this view's request (no push comes for it): the store and the page take it. */
  const apply = (r: Relation) => {
    s.apply(r);
    ctx.relationChanged?.(r);
  };
  const msg = messageAreas("contacts");

  /** Typed drafts kept across re-renders. */
  const requestRemark = new Map<string, string>();
  let remarkFor: string | undefined;
  let remarkDraft = "";
  let deleting: string | undefined;
  let search: { query: string; ids: string[] } | undefined;
  let lookup:
    | { userId: string; exists: boolean; disabled: boolean; profile?: Profile; relation?: Relation }
    | undefined;

  const run = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      msg.fail(e, what);
    }
  };

  // ---- add a friend
  const addUser = h("input", {
    id: "ct-add-user",
    testid: "add-friend-user",
    placeholder: "user id",
    autocomplete: "off",
    required: true,
    pattern: USER_ID_PATTERN,
    spellcheck: false,
  });
  const addMessage = h("input", { id: "ct-add-msg", testid: "add-friend-message", placeholder: "Hi, it's me!", maxLength: 256 });
  const addRemark = h("input", { id: "ct-add-remark", testid: "add-friend-remark", placeholder: "optional", maxLength: 64 });
  const addSubmit = h("button", { type: "submit", testid: "add-friend-submit", textContent: "Add friend" });
  const lookupBtn = btn("Look up", "Look up this user", "add-friend-lookup", () => void doLookup(), "ct-secondary");
  const lookupBox = h("div", { className: "ct-lookup", testid: "lookup-result", "aria-live": "polite" });
  const addForm = h(
    "form",
    { className: "ct-form ct-add", "aria-label": "Add a friend", testid: "add-friend-form" },
    h("label", { for: "ct-add-user" }, "User id"),
    h("div", { className: "ct-inline" }, addUser, lookupBtn),
    lookupBox,
    h("label", { for: "ct-add-msg" }, "Request message"),
    addMessage,
    h("label", { for: "ct-add-remark" }, "Remark (your name for them)"),
    addRemark,
    h("div", { className: "ct-inline" }, addSubmit),
  );
  addUser.addEventListener("input", () => {
    lookup = undefined;
    renderLookup();
  });
  addForm.addEventListener("submit", (e) => {
    e.preventDefault();
    void doAdd();
  });

  async function doLookup() {
    const u = addUser.value.trim();
    if (!u) {
      addUser.focus();
      return msg.fail("enter a user id", "Look up");
    }
    await run(`Could not look up ${u}`, async () => {
      const [acc] = (await client.accountsExist({ userIds: [u] })).accounts;
      lookup = { userId: u, exists: !!acc?.exists, disabled: !!acc?.disabled };
      if (lookup.exists) {
        const [p] = (await client.getProfiles({ userIds: [u] })).profiles;
        if (p) s.profiles.set(u, p);
        lookup.profile = p;
        if (u !== me) lookup.relation = (await client.checkRelations({ userIds: [u] })).relations[0];
      }
      msg.clear();
      renderLookup();
    });
  }

  function renderLookup() {
    addSubmit.disabled = false;
    addSubmit.textContent = "Add friend";
    if (!lookup) return lookupBox.replaceChildren();
    const u = lookup.userId;
    if (!lookup.exists) {
      lookupBox.replaceChildren(h("p", { className: "ct-muted", testid: "lookup-missing" }, `No user “${u}” on this server.`));
      addSubmit.disabled = true;
      return;
    }
    const p = lookup.profile;
    const r = lookup.relation;
    const policy = p?.friendVerification ?? FriendVerification.NEED_APPROVAL;
    let rel = "";
    if (u === me) rel = "This is you.";
    else if (r?.blocked) rel = "You blacklisted this user: remove them from your blacklist to add them.";
    else if (r?.isFriend && r.peerHasMe) rel = "Already your friend.";
    else if (r?.isFriend) rel = "In your friend list (they removed you).";
    else if (r?.outgoing?.state === RequestState.PENDING) rel = "Your request is waiting for their approval.";
    else if (r?.incoming?.state === RequestState.PENDING) rel = "They sent you a request: adding them accepts it.";
    lookupBox.replaceChildren(
      h(
        "div",
        { className: "ct-card" },
        avatarOf(u, p?.nickname ?? "", p?.avatarUrl, undefined),
        h(
          "div",
          { className: "ct-main" },
          h("strong", { testid: "lookup-name" }, p?.nickname || u),
          h("span", { className: "ct-sub" }, `@${u}${lookup.disabled ? " · account disabled" : ""}`),
          p?.signature ? h("span", { className: "ct-sub" }, p.signature) : undefined,
          h("span", { className: "ct-policy", testid: "lookup-policy" }, policyText(policy)),
          rel ? h("span", { className: "ct-sub", testid: "lookup-relation" }, rel) : undefined,
        ),
      ),
    );
    if (policy === FriendVerification.DENY_ALL && !(r?.incoming?.state === RequestState.PENDING) && !r?.peerHasMe) {
      addSubmit.disabled = true;
      addSubmit.textContent = "Not accepting requests";
    } else if (policy === FriendVerification.NEED_APPROVAL && !r?.peerHasMe && r?.incoming?.state !== RequestState.PENDING) {
      addSubmit.textContent = "Send request";
    }
  }

  async function doAdd() {
    const u = addUser.value.trim();
    if (!u) return;
    if (u === me) return msg.fail("you cannot add yourself", "Add friend");
    await run(`Could not add ${u}`, async () => {
      const r = await client.addFriend({ userId: u, message: addMessage.value.trim(), remark: addRemark.value.trim() });
      if (r.relation) apply(r.relation);
      msg.ok(
        r.status === AddFriendStatus.ADDED
          ? `You and ${nameOf(s, u)} are now friends.`
          : `Friend request sent to ${nameOf(s, u)}; it shows under Sent until they answer.`,
      );
      addUser.value = addMessage.value = addRemark.value = "";
      lookup = undefined;
      renderLookup();
    });
  }

  // ---- requests
  const inList = h("ul", { className: "ct-list", testid: "requests-incoming", "aria-label": "Friend requests received" });
  const outList = h("ul", { className: "ct-list", testid: "requests-outgoing", "aria-label": "Friend requests sent" });
  const reqCount = h("span", { className: "ct-count", testid: "requests-pending-count" });
  /** Shown above the friend list while requests wait for an answer; moves focus to the first one. */
  const pendingBanner = btn("", "Review friend requests", "requests-pending-banner", () => {
    const first = inList.querySelector<HTMLElement>('li[data-state="PENDING"] input');
    first?.scrollIntoView({ block: "center" });
    first?.focus();
  }, "ct-banner");

  function requestRow(r: FriendRequest, outgoing: boolean): HTMLElement {
    const u = outgoing ? r.toUser : r.fromUser;
    const pending = r.state === RequestState.PENDING;
    const p = s.profiles.get(u);
    const li = h(
      "li",
      { className: `ct-row${pending ? "" : " ct-done"}`, testid: `request-${outgoing ? "out" : "in"}-${u}`, "data-state": RequestState[r.state] },
      avatarOf(u, p?.nickname ?? "", p?.avatarUrl, undefined),
      h(
        "div",
        { className: "ct-main" },
        h("span", { className: "ct-top" }, h("strong", { testid: "request-user" }, nameOf(s, u)), h("span", { className: "ct-time" }, dateOf(r.createdMs))),
        h("span", { className: "ct-sub" }, `@${u}`),
        r.message ? h("q", { className: "ct-quote", testid: "request-message" }, r.message) : h("span", { className: "ct-sub" }, "(no message)"),
        h("span", { className: `ct-state ${RequestState[r.state]?.toLowerCase() ?? ""}`, testid: "request-state" }, stateText(r, outgoing)),
      ),
    );
    if (!outgoing && pending) {
      const remark = h("input", {
        testid: `request-remark-${u}`,
        "aria-label": `Remark for ${u} (optional)`,
        placeholder: "Remark (optional)",
        maxLength: 64,
        value: requestRemark.get(u) ?? "",
        oninput: (e: Event) => requestRemark.set(u, (e.target as HTMLInputElement).value),
      });
      const respond = (accept: boolean) =>
        run(`Could not ${accept ? "accept" : "reject"} ${u}'s request`, async () => {
          const rel = await client.respondFriendRequest({ userId: u, accept, remark: accept ? (requestRemark.get(u) ?? "").trim() : "" });
          requestRemark.delete(u);
          apply(rel);
          msg.ok(accept ? `You and ${nameOf(s, u)} are now friends.` : `Rejected ${u}'s request.`);
        });
      remark.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          void respond(true);
        }
      });
      li.append(
        h(
          "div",
          { className: "ct-actions ct-wide" },
          remark,
          btn("Accept", `Accept ${u}'s friend request`, `request-accept-${u}`, () => void respond(true)),
          btn("Reject", `Reject ${u}'s friend request`, `request-reject-${u}`, () => void respond(false), "ct-secondary"),
        ),
      );
    }
    return li;
  }

  function sortRequests(m: Map<string, FriendRequest>): FriendRequest[] {
    return [...m.values()].sort((a, b) => {
      const pa = a.state === RequestState.PENDING ? 0 : 1;
      const pb = b.state === RequestState.PENDING ? 0 : 1;
      return pa - pb || (b.createdMs > a.createdMs ? 1 : b.createdMs < a.createdMs ? -1 : 0);
    });
  }

  function renderRequests() {
    const inc = sortRequests(s.incoming);
    const out = sortRequests(s.outgoing);
    const pending = inc.filter((r) => r.state === RequestState.PENDING).length;
    reqCount.textContent = pending ? String(pending) : "";
    reqCount.setAttribute("aria-label", `${pending} pending`);
    pendingBanner.hidden = pending === 0;
    pendingBanner.textContent = `${pending} friend request${pending === 1 ? "" : "s"} waiting for you — review`;
    pendingBanner.setAttribute("aria-label", pendingBanner.textContent);
    pendingBanner.title = "";
    keepFocus(inList, () =>
      inList.replaceChildren(...(inc.length ? inc.map((r) => requestRow(r, false)) : [h("li", { className: "ct-empty" }, "No requests received.")])),
    );
    outList.replaceChildren(...(out.length ? out.map((r) => requestRow(r, true)) : [h("li", { className: "ct-empty" }, "No requests sent.")]));
  }

  // ---- friends
  const searchInput = h("input", {
    id: "ct-search",
    type: "search",
    testid: "friend-search",
    placeholder: "Search friends",
    title: "Search by user id, nickname or remark",
    maxLength: 64,
    autocomplete: "off",
  });
  const searchNote = h("p", { className: "ct-muted", testid: "friend-search-note", "aria-live": "polite" });
  const friendList = h("ul", { className: "ct-list", testid: "friend-list", "aria-label": "Friends" });
  const friendCount = h("span", { className: "ct-count ct-plain", testid: "friend-count" });
  const searchForm = h(
    "form",
    { className: "ct-inline", role: "search", "aria-label": "Search friends" },
    h("label", { for: "ct-search", className: "ct-sr" }, "Search friends"),
    searchInput,
    btn("Clear", "Clear the search", "friend-search-clear", () => {
      searchInput.value = "";
      search = undefined;
      renderFriends();
    }, "ct-secondary"),
  );
  let searchTimer: ReturnType<typeof setTimeout> | undefined;
  searchForm.addEventListener("submit", (e) => {
    e.preventDefault();
    void doSearch();
  });
  searchInput.addEventListener("input", () => {
    if (searchTimer) clearTimeout(searchTimer);
    searchTimer = setTimeout(() => void doSearch(), 250);
  });

  async function doSearch() {
    const q = searchInput.value.trim();
    if (!q) {
      search = undefined;
      return renderFriends();
    }
    await run("Search failed", async () => {
      const r = await client.searchFriends({ query: q });
      for (const p of r.profiles) s.profiles.set(p.userId, p);
      if (searchInput.value.trim() !== q) return; // a newer query is on its way
      search = { query: q, ids: r.friends.map((f) => f.userId) };
      renderFriends();
    });
  }

  function friendRow(u: string, r: Relation): HTMLElement {
    const p = s.profiles.get(u);
    const pres = s.presence.get(u);
    const online = onlineOf(s, ctx, u);
    const name = nameOf(s, u);
    const sub = [`@${u}`, r.remark && p?.nickname ? p.nickname : "", r.peerHasMe ? "" : "removed you"].filter(Boolean).join(" · ");
    const open = () => ctx.openConversation(directConvId(me, u));
    const main = h(
      "div",
      { className: "ct-main" },
      h(
        "span",
        { className: "ct-top" },
        h("button", { type: "button", className: "ct-link", testid: `friend-chat-${u}`, "aria-label": `Chat with ${name}`, onclick: open }, h("strong", { testid: "friend-name" }, name)),
        h("span", { className: `ct-online${online ? " on" : ""}`, testid: "friend-online" }, online ? "online" : "offline"),
      ),
      h("span", { className: "ct-sub" }, sub),
      pres?.statusText ? h("span", { className: "ct-statustext", testid: "friend-status-text" }, pres.statusText) : undefined,
      p?.signature ? h("span", { className: "ct-sub ct-sig", testid: "friend-signature" }, p.signature) : undefined,
    );
    if (remarkFor === u) {
      const input = h("input", {
        testid: `friend-remark-input-${u}`,
        "aria-label": `Remark for ${u}`,
        maxLength: 64,
        value: remarkDraft,
        placeholder: "Remark (empty clears it)",
        oninput: (e: Event) => (remarkDraft = (e.target as HTMLInputElement).value),
      });
      const save = () =>
        run(`Could not set the remark for ${u}`, async () => {
          const rel = await client.updateFriend({ userId: u, remark: remarkDraft.trim() });
          remarkFor = undefined;
          apply(rel);
          msg.ok(rel.remark ? `${u} is now shown as “${rel.remark}”.` : `Cleared the remark for ${u}.`);
          root.querySelector<HTMLElement>(`[data-testid="friend-remark-${u}"]`)?.focus();
        });
      const cancel = () => {
        remarkFor = undefined;
        renderFriends();
        root.querySelector<HTMLElement>(`[data-testid="friend-remark-${u}"]`)?.focus();
      };
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          void save();
        } else if (e.key === "Escape") {
          e.preventDefault();
          cancel();
        }
      });
      main.append(
        h(
          "div",
          { className: "ct-actions ct-wide" },
          input,
          btn("Save", `Save the remark for ${u}`, `friend-remark-save-${u}`, () => void save()),
          btn("Cancel", "Cancel editing the remark", `friend-remark-cancel-${u}`, cancel, "ct-secondary"),
        ),
      );
    }
    if (deleting === u) {
      const del = (bothSides: boolean) =>
        run(`Could not remove ${u}`, async () => {
          const rel = await client.deleteFriend({ userId: u, bothSides });
          deleting = undefined;
          apply(rel);
          msg.ok(bothSides ? `You and ${u} are no longer friends.` : `Removed ${u} from your friend list.`);
        });
      main.append(
        h(
          "div",
          { className: "ct-confirm", role: "group", "aria-label": `Remove ${u}?`, testid: `friend-delete-confirm-${u}` },
          h("span", {}, `Remove ${name}?`),
          btn("Only from my list", `Remove ${u} only from my list`, `friend-delete-mine-${u}`, () => void del(false), "ct-danger"),
          btn("Both ways", `Remove ${u} both ways (from each other's lists)`, `friend-delete-both-${u}`, () => void del(true), "ct-danger"),
          btn("Cancel", "Cancel: keep this friend", `friend-delete-cancel-${u}`, () => {
            deleting = undefined;
            renderFriends();
            root.querySelector<HTMLElement>(`[data-testid="friend-delete-${u}"]`)?.focus();
          }, "ct-secondary"),
        ),
      );
    }
    const li = h(
      "li",
      { className: "ct-row ct-friend", testid: `friend-${u}`, "data-online": String(online) },
      avatarOf(u, p?.nickname ?? name, p?.avatarUrl, online),
      main,
      h(
        "div",
        { className: "ct-actions" },
        btn("Chat", `Chat with ${name}`, `friend-open-${u}`, open, "ct-small"),
        btn("Remark", `Edit the remark for ${u}`, `friend-remark-${u}`, () => {
          remarkFor = u;
          remarkDraft = r.remark;
          deleting = undefined;
          renderFriends();
          root.querySelector<HTMLElement>(`[data-testid="friend-remark-input-${u}"]`)?.focus();
        }, "ct-small ct-secondary"),
        btn("Block", `Block ${u} (add to the blacklist)`, `friend-block-${u}`, () => void block(u), "ct-small ct-secondary"),
        btn("Remove", `Remove ${u} from friends`, `friend-delete-${u}`, () => {
          deleting = u;
          remarkFor = undefined;
          renderFriends();
          root.querySelector<HTMLElement>(`[data-testid="friend-delete-mine-${u}"]`)?.focus();
        }, "ct-small ct-secondary"),
      ),
    );
    li.addEventListener("click", (e) => {
      // A click on the row (not on one of its controls) opens the chat.
      if ((e.target as HTMLElement).closest("button, input, a, .ct-confirm")) return;
      open();
    });
    return li;
  }

  function renderFriends() {
    const all = [...s.friends.keys()].sort((a, b) => nameOf(s, a).localeCompare(nameOf(s, b)) || a.localeCompare(b));
    const ids = search ? search.ids.filter((u) => s.friends.has(u)) : all;
    friendCount.textContent = String(s.friends.size);
    searchNote.textContent = search ? `${ids.length} of ${s.friends.size} friends match “${search.query}”.` : "";
    const rows = ids.map((u) => friendRow(u, s.friends.get(u)!));
    const empty = !s.loaded
      ? "Loading…"
      : search
        ? "No friend matches."
        : "No friends yet: add one by user id above, or accept a request.";
    keepFocus(friendList, () => friendList.replaceChildren(...(rows.length ? rows : [h("li", { className: "ct-empty", testid: "friend-list-empty" }, empty)])));
  }

  // ---- blacklist
  const blockInput = h("input", {
    id: "ct-block-user",
    testid: "blacklist-user",
    placeholder: "user id",
    autocomplete: "off",
    required: true,
    pattern: USER_ID_PATTERN,
    spellcheck: false,
  });
  const blockList = h("ul", { className: "ct-list", testid: "blacklist", "aria-label": "Blacklisted users" });
  const blockForm = h(
    "form",
    { className: "ct-form", "aria-label": "Blacklist a user" },
    h("label", { for: "ct-block-user" }, "Blacklist a user (their messages and friend requests to you are refused)"),
    h("div", { className: "ct-inline" }, blockInput, h("button", { type: "submit", className: "ct-danger", testid: "blacklist-add" }, "Blacklist")),
  );
  blockForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const u = blockInput.value.trim();
    if (!u) return;
    if (u === me) return msg.fail("you cannot blacklist yourself", "Blacklist");
    void block(u).then(() => {
      if (s.blocked.has(u)) blockInput.value = "";
    });
  });

  async function block(u: string) {
    await run(`Could not blacklist ${u}`, async () => {
      const rel = await client.addToBlacklist({ userId: u });
      apply(rel);
      msg.ok(`${u} is blacklisted: their messages to you are refused.`);
    });
  }

  function renderBlacklist() {
    const ids = [...s.blocked.keys()].sort();
    keepFocus(blockList, () =>
      blockList.replaceChildren(
        ...(ids.length
          ? ids.map((u) => {
              const p = s.profiles.get(u);
              return h(
                "li",
                { className: "ct-row", testid: `blocked-${u}` },
                avatarOf(u, p?.nickname ?? "", p?.avatarUrl, undefined),
                h(
                  "div",
                  { className: "ct-main" },
                  h("strong", {}, p?.nickname || u),
                  h("span", { className: "ct-sub" }, `@${u}${s.blocked.get(u) ? ` · since ${dateOf(s.blocked.get(u)!)}` : ""}`),
                ),
                h(
                  "div",
                  { className: "ct-actions" },
                  btn("Remove", `Remove ${u} from the blacklist`, `blacklist-remove-${u}`, () =>
                    void run(`Could not remove ${u} from the blacklist`, async () => {
                      const rel = await client.removeFromBlacklist({ userId: u });
                      apply(rel);
                      msg.ok(`${u} is no longer blacklisted.`);
                    }), "ct-secondary"),
                ),
              );
            })
          : [h("li", { className: "ct-empty" }, "Nobody is blacklisted.")]),
      ),
    );
  }

  // ---- layout
  const section = (id: string, title: Node[], ...body: Node[]) =>
    h("section", { className: "ct-section", "aria-labelledby": id }, h("h3", { id }, ...title), ...body);
  const view = h(
    "div",
    { className: "ct-view", testid: "contacts-view" },
    h("h2", { className: "ct-title" }, "Contacts"),
    msg.error,
    msg.status,
    pendingBanner,
    section("ct-h-friends", [document.createTextNode("Friends "), friendCount], searchForm, searchNote, friendList),
    section("ct-h-req", [document.createTextNode("Friend requests "), reqCount],
      h("h4", {}, "Received"), inList, h("h4", {}, "Sent"), outList),
    section("ct-h-add", [document.createTextNode("Add a friend")], addForm),
    section("ct-h-black", [document.createTextNode("Blacklist")], blockForm, blockList),
  );
  root.replaceChildren(view);

  const renderAll = () => {
    renderRequests();
    renderFriends();
    renderBlacklist();
  };
  const detach = s.attach(
    (c) => {
      if (c === "requests" || c === "loaded") renderRequests();
      if (c === "friends" || c === "profiles" || c === "presence" || c === "loaded") {
        renderFriends();
        if (search && c === "friends") void doSearch(); // a new or removed friend may change the matches
      }
      if (c === "profiles") renderRequests();
      if (c === "blacklist" || c === "profiles" || c === "loaded") renderBlacklist();
      if (c === "loaded" && msg.status.textContent?.startsWith("Connecting")) msg.clear();
    },
    (e, what) => {
      msg.fail(e, what);
      // A background failure (a reload on reconnect, a pushed change) while this view is hidden goes to the page too.
      if (!root.checkVisibility()) ctx.showError(e);
    },
  );
  renderAll();
  const refresh = () => {
    if (client.state !== "online") {
      msg.ok("Connecting… contacts load once online.");
      return;
    }
    s.load().catch((e) => msg.fail(e, "Could not load contacts"));
  };
  refresh();
  return {
    refresh,
    dispose() {
      if (searchTimer) clearTimeout(searchTimer);
      detach();
      root.replaceChildren();
    },
  };
}
