/**
 * Groups on the chat page (spec section 14): what the page knows of each group
 * (`GroupStore`: public info, the signed-in user's member record, member pages,
 * pending applications and invitations, who-read receipts), the group panel
 * (info, members, invitations, applications, settings, leave / dismiss), the
 * sidebar's group requests, and the human wording of group tips (14.8).
 *
 * Invariants:
 * - the broker decides every permission: the panel only hides controls the
 *   signed-in user's role cannot use ([GR-5]); whatever the broker refuses is
 *   shown through `host.showError` (code name + message), never swallowed;
 * - a group tip (or a group_application push) makes the store re-read that
 *   group from the broker (info, own member record, loaded member pages,
 *   pending applications): the store never infers membership from tips alone;
 * - `mine(gid) === null` means "not a member" as the broker said (4102 / 4100,
 *   or the group is dismissed): the page is then read-only for that group;
 *   `undefined` means "not known yet";
 * - who-read counts are fetched only for groups that serve them: a group that
 *   answers 4112 (too large) is remembered and never asked again;
 * - the panel's member list is paged (`MEMBER_PAGE`, "Load more"); a re-read
 *   after a tip keeps as many members as were shown. The mention list reads
 *   every member on demand (`loadRoster`: at most `ROSTER_MAX`, pages of 500),
 *   read again only after a tip of that group.
 */
import {
  ApplicationState,
  EditMode,
  GroupNotify,
  GroupRole,
  GroupType,
  HistoryVisibility,
  InviteMode,
  JoinMode,
  JoinStatus,
  type GroupApplication,
  type GroupInfo,
  type GroupMember,
  type GroupReceipt,
} from "../src/gen/group_pb.ts";
import type { Tip } from "../src/gen/message_pb.ts";
import { MissiveError, type MissiveClient } from "../src/index.ts";

/** What the groups module needs from the page. */
export interface GroupHost {
  client(): MissiveClient | undefined;
  me(): string;
  /** The page's name of a user outside the group (my remark, their nickname, else the id). */
  nameOf(uid: string): string;
  showError(e: unknown): void;
  /** Something about group `gid` changed: re-render the list, header and composer. */
  changed(gid: string): void;
  open(convId: string): void;
  toast(text: string): void;
}

export const gidOf = (convId: string | undefined) => (convId?.startsWith("g:") ? convId.slice(2) : undefined);

/** Error codes the page treats as "not a member / no such group" (spec section 10). */
const NOT_GROUP_MEMBER = 4102;
const GROUP_NOT_FOUND = 4100;
const RECEIPT_GROUP_TOO_LARGE = 4112;

/** "Not connected", a lost connection, a timeout or a retryable refusal: a background read waits for the reconnect. */
const offline = (e: unknown) => e instanceof MissiveError && (e.code === 0 || e.retryable);

/** Valid id bytes in ascending order ([I-1]). */
const ID_CHARS = "-.0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/**
 * The largest valid id (at most 64 bytes) below `id`: a cursor whose next
 * `ListGroupMembers` entry (entries strictly above the cursor, [RL-1]) is `id`
 * itself if it is a member. Lets the page read its own member record with
 * one request of one entry, whatever the group's size.
 */
export function cursorBefore(id: string): string {
  const i = ID_CHARS.indexOf(id[id.length - 1]);
  if (i <= 0) return id.slice(0, -1);
  return id.slice(0, -1) + ID_CHARS[i - 1] + "z".repeat(64 - id.length);
}

/** Tiny DOM builder: attributes (`testid` sets data-testid, `on*` functions become listeners). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> = {},
  ...children: (Node | string | false | undefined | null)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false || v === null) continue;
    if (k === "testid") el.dataset.testid = String(v);
    else if (k === "class") el.className = String(v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "value") (el as HTMLInputElement).value = String(v);
    else if (k === "checked") (el as HTMLInputElement).checked = Boolean(v);
    else if (k === "disabled") (el as HTMLButtonElement).disabled = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== undefined && c !== null && c !== false) el.append(c);
  return el;
}

interface MemberPages {
  list: GroupMember[];
  next: string;
  count: number;
}

/** Members per page of the panel's member list ("Load more" reads the next page). */
export const MEMBER_PAGE = 50;
/** The most members the mention list reads (pages of 500, [RL-1] maximum), whatever the group's size. */
export const ROSTER_MAX = 2000;

/** Every member of a group (up to `ROSTER_MAX`), read on demand for the mention list. */
interface Roster {
  list: GroupMember[];
  /** Read to the end (or to the bound); false while reading. */
  done: boolean;
  /** The last read failed: not asked again before the next `online()`. */
  failed: boolean;
}

const roleName = (r: GroupRole) => (r === GroupRole.OWNER ? "Owner" : r === GroupRole.ADMIN ? "Admin" : "Member");

export class GroupStore {
  private info = new Map<string, GroupInfo>();
  private mineMap = new Map<string, GroupMember | null>();
  private members = new Map<string, MemberPages>();
  private rosters = new Map<string, Roster>();
  /** Pending applications and invitations of groups the user manages (ListGroupApplications). */
  private pendingMap = new Map<string, GroupApplication[]>();
  /** Consent invitations this user sent, not yet answered (for inviters who cannot list them). */
  private invitedByMe = new Map<string, Set<string>>();
  /** Sidebar requests: invitations to me, applications to groups I manage; key `${gid}\n${user}`. */
  readonly requests = new Map<string, GroupApplication>();
  private receipts = new Map<string, Map<bigint, GroupReceipt>>();
  private noReceipts = new Set<string>();
  private wanted = new Set<string>();
  private infoTimer?: ReturnType<typeof setTimeout>;
  private loadingMine = new Set<string>();
  /** Ids whose info / own record `ensure` asked for since the last `online()` (no retry loop while offline). */
  private triedInfo = new Set<string>();
  private triedMine = new Set<string>();
  private refreshTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private receiptBusy = new Set<string>();
  /** Requests re-rendered by the page (sidebar). */
  onRequests: () => void = () => {};

  constructor(private readonly host: GroupHost) {}

  reset() {
    this.info.clear();
    this.mineMap.clear();
    this.members.clear();
    this.rosters.clear();
    this.pendingMap.clear();
    this.invitedByMe.clear();
    this.requests.clear();
    this.receipts.clear();
    this.noReceipts.clear();
    this.wanted.clear();
    this.triedInfo.clear();
    this.triedMine.clear();
    for (const t of this.refreshTimers.values()) clearTimeout(t);
    this.refreshTimers.clear();
    if (this.infoTimer) clearTimeout(this.infoTimer);
    this.infoTimer = undefined;
  }

  /** The session is (back) online: what could not be read is asked for again by the next `ensure`. */
  online() {
    this.triedInfo.clear();
    this.triedMine.clear();
    for (const [gid, r] of this.rosters) if (r.failed) this.rosters.delete(gid);
    void this.loadMyInvitations();
    for (const gid of this.mineMap.keys()) if (this.isManager(gid)) void this.loadPending(gid);
  }

  get(gid: string): GroupInfo | undefined {
    return this.info.get(gid);
  }

  name(gid: string): string {
    return this.info.get(gid)?.name || gid;
  }

  mine(gid: string): GroupMember | null | undefined {
    return this.mineMap.get(gid);
  }

  role(gid: string): GroupRole {
    return this.mineMap.get(gid)?.role ?? GroupRole.UNSPECIFIED;
  }

  isManager(gid: string): boolean {
    const r = this.role(gid);
    return r === GroupRole.OWNER || r === GroupRole.ADMIN;
  }

  /** The user is no longer (or never was) a member, or the group is dismissed. */
  ended(gid: string): boolean {
    return this.mineMap.get(gid) === null || this.info.get(gid)?.dismissed === true;
  }

  memberPages(gid: string): MemberPages | undefined {
    return this.members.get(gid);
  }

  pending(gid: string): GroupApplication[] {
    return this.pendingMap.get(gid) ?? [];
  }

  invitedLocally(gid: string): string[] {
    return [...(this.invitedByMe.get(gid) ?? [])];
  }

  /** Display name of a member: the group nickname when known, else the page's name of the user (remark, nickname, id). */
  display(gid: string | undefined, uid: string): string {
    if (!gid) return this.host.nameOf(uid);
    const m = this.members.get(gid)?.list.find((x) => x.userId === uid) ?? (uid === this.host.me() ? this.mineMap.get(gid) : undefined);
    return m?.nickname || this.host.nameOf(uid);
  }

  /** Info and own member record of `gid`, fetched once (batched), then on `refresh`. */
  ensure(gid: string) {
    this.ensureInfoOnly(gid);
    if (!this.mineMap.has(gid) && !this.triedMine.has(gid)) {
      this.triedMine.add(gid);
      void this.loadMine(gid);
    }
  }

  private async flushInfo() {
    this.infoTimer = undefined;
    const c = this.host.client();
    const ids = [...this.wanted].slice(0, 100);
    if (!c || !ids.length) return;
    for (const id of ids) this.wanted.delete(id);
    try {
      const r = await c.getGroups({ groupIds: ids });
      for (const g of r.groups) this.setInfo(g);
    } catch (e) {
      // Asked again after the next `online()` (or by `refresh`), not in a loop.
      if (!(e instanceof MissiveError && (e.code === 0 || e.retryable))) this.host.showError(e);
    }
    if (this.wanted.size && !this.infoTimer) this.infoTimer = setTimeout(() => void this.flushInfo(), 30);
  }

  private setInfo(g: GroupInfo) {
    this.info.set(g.groupId, g);
    if (g.dismissed) this.mineMap.set(g.groupId, null);
    this.host.changed(g.groupId);
  }

  private async loadMine(gid: string) {
    const c = this.host.client();
    const me = this.host.me();
    if (!c || this.loadingMine.has(gid)) return;
    this.loadingMine.add(gid);
    const before = this.mineMap.get(gid);
    try {
      const r = await c.listGroupMembers({ groupId: gid, cursor: cursorBefore(me), limit: 1 });
      const m = r.members.find((x) => x.userId === me) ?? null;
      this.mineMap.set(gid, m);
      if (m && (m.role === GroupRole.OWNER || m.role === GroupRole.ADMIN)) void this.loadPending(gid);
    } catch (e) {
      if (e instanceof MissiveError && (e.code === NOT_GROUP_MEMBER || e.code === GROUP_NOT_FOUND)) this.mineMap.set(gid, null);
      else if (!(e instanceof MissiveError && (e.code === 0 || e.retryable))) this.host.showError(e);
    } finally {
      this.loadingMine.delete(gid);
    }
    if (this.mineMap.get(gid) !== before) this.host.changed(gid);
  }

  /** Re-reads everything the page holds of `gid` (after a tip or a push). */
  async refresh(gid: string) {
    const c = this.host.client();
    if (!c) return;
    try {
      const r = await c.getGroups({ groupIds: [gid] });
      for (const g of r.groups) this.setInfo(g);
    } catch (e) {
      if (!offline(e)) this.host.showError(e); // a background read: offline waits for the reconnect
    }
    await this.loadMine(gid);
    this.rosters.delete(gid); // membership may have changed: read again when next needed
    if (this.members.has(gid)) await this.loadMembers(gid, false);
    if (this.isManager(gid)) await this.loadPending(gid);
    this.host.changed(gid);
  }

  /**
   * The member list from the start (as many members as were loaded, at least one
   * page: a re-read after a tip keeps what "Load more" showed) or, with `more`,
   * the next page of `MEMBER_PAGE`.
   */
  async loadMembers(gid: string, more: boolean) {
    const c = this.host.client();
    if (!c) return;
    const prev = this.members.get(gid);
    const cursor = more && prev ? prev.next : "";
    if (more && !cursor) return;
    const limit = more ? MEMBER_PAGE : Math.min(500, Math.max(MEMBER_PAGE, prev?.list.length ?? 0));
    try {
      const r = await c.listGroupMembers({ groupId: gid, cursor, limit });
      const list = more && prev ? [...prev.list, ...r.members] : r.members;
      this.members.set(gid, { list, next: r.nextCursor, count: r.memberCount });
      const me = list.find((m) => m.userId === this.host.me());
      if (me) this.mineMap.set(gid, me);
    } catch (e) {
      if (e instanceof MissiveError && (e.code === NOT_GROUP_MEMBER || e.code === GROUP_NOT_FOUND)) {
        this.mineMap.set(gid, null);
        this.members.delete(gid);
      } else if (more || !offline(e)) this.host.showError(e); // "Load more" is the user's; the first page a background read
    }
    this.host.changed(gid);
  }

  /**
   * The members known for `gid`: the roster when read (with members the loaded
   * pages hold that it lacks), else the loaded pages; ascending by user id.
   */
  knownMembers(gid: string): GroupMember[] {
    const pages = this.members.get(gid)?.list ?? [];
    const r = this.rosters.get(gid);
    if (!r?.list.length) return pages;
    const have = new Set(r.list.map((m) => m.userId));
    const fresh = new Map(pages.map((m) => [m.userId, m])); // a page read later may hold a newer record
    const out = r.list.map((m) => fresh.get(m.userId) ?? m);
    for (const m of pages) if (!have.has(m.userId)) out.push(m);
    return out.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  }

  /** Whether every member (up to `ROSTER_MAX`) is known. */
  rosterDone(gid: string): boolean {
    const p = this.members.get(gid);
    return this.rosters.get(gid)?.done === true || (!!p && !p.next);
  }

  /**
   * Reads every member of `gid` for the mention list, up to `ROSTER_MAX` (and
   * the group's `max_members`), in pages of 500: at most 4 requests, once per
   * group until a tip changes it (`refresh`); a failure waits for `online()`.
   */
  async loadRoster(gid: string) {
    const c = this.host.client();
    if (!c || this.rosters.has(gid) || this.rosterDone(gid)) return;
    const r: Roster = { list: [], done: false, failed: false };
    this.rosters.set(gid, r);
    const max = Math.min(ROSTER_MAX, this.info.get(gid)?.maxMembers || ROSTER_MAX);
    let cursor = "";
    try {
      while (r.list.length < max) {
        const page = await c.listGroupMembers({ groupId: gid, cursor, limit: Math.min(500, max - r.list.length) });
        if (this.rosters.get(gid) !== r) return; // dropped meanwhile (refresh, reset)
        r.list.push(...page.members);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      r.done = true;
    } catch (e) {
      r.failed = true;
      if (!(e instanceof MissiveError && (e.code === 0 || e.retryable || e.code === NOT_GROUP_MEMBER || e.code === GROUP_NOT_FOUND))) this.host.showError(e);
    }
    if (this.rosters.get(gid) === r) this.host.changed(gid);
  }

  /** Pending applications and invitations of a group the user manages. */
  async loadPending(gid: string) {
    const c = this.host.client();
    if (!c) return;
    try {
      const r = await c.listGroupApplications({ groupId: gid, outgoing: false, cursor: "", limit: 100 });
      const pending = r.applications.filter((a) => a.state === ApplicationState.PENDING);
      this.pendingMap.set(gid, pending);
      for (const [k, a] of this.requests) if (a.groupId === gid && !a.inviter) this.requests.delete(k);
      for (const a of pending) if (!a.inviter) this.requests.set(`${gid}\n${a.userId}`, a);
      const mine = this.invitedByMe.get(gid);
      if (mine) for (const u of mine) if (!pending.some((a) => a.userId === u && a.inviter)) mine.delete(u);
    } catch (e) {
      if (!(e instanceof MissiveError && (e.code === 4104 || e.code === NOT_GROUP_MEMBER))) this.host.showError(e);
    }
    this.onRequests();
    this.host.changed(gid);
  }

  /**
   * Invitations waiting for this user's consent (each time the session comes online).
   * The list holds every record of the user's, answered ones too ([GR-27]): it is
   * read to its end (pages of 500, at most 20).
   */
  async loadMyInvitations() {
    const c = this.host.client();
    if (!c) return;
    try {
      const applications: GroupApplication[] = [];
      let cursor = "";
      for (let page = 0; page < 20; page++) {
        const r = await c.listGroupApplications({ groupId: "", outgoing: true, cursor, limit: 500 });
        applications.push(...r.applications);
        cursor = r.nextCursor;
        if (!cursor) break;
      }
      const me = this.host.me();
      for (const [k, a] of this.requests) if (a.userId === me && a.inviter) this.requests.delete(k);
      for (const a of applications) {
        const k = `${a.groupId}\n${a.userId}`;
        if (a.inviter && a.state === ApplicationState.PENDING) {
          this.requests.set(k, a);
          this.ensureInfoOnly(a.groupId);
        }
      }
    } catch (e) {
      if (!(e instanceof MissiveError && e.code === 0)) this.host.showError(e);
    }
    this.onRequests();
  }

  private ensureInfoOnly(gid: string) {
    if (this.info.has(gid) || this.triedInfo.has(gid)) return;
    this.triedInfo.add(gid);
    this.wanted.add(gid);
    if (!this.infoTimer) this.infoTimer = setTimeout(() => void this.flushInfo(), 30);
  }

  /** A `group_application` push ([GR-8], [GR-10]). */
  onApplication(a: GroupApplication) {
    const me = this.host.me();
    const k = `${a.groupId}\n${a.userId}`;
    this.ensureInfoOnly(a.groupId);
    if (a.state === ApplicationState.PENDING) {
      this.requests.set(k, a);
      if (a.userId === me && a.inviter) this.host.toast(`${a.inviter} invited you to the group ${this.name(a.groupId)}`);
      else if (a.userId !== me) {
        this.host.toast(`${a.userId} asks to join ${this.name(a.groupId)}`);
        void this.loadPending(a.groupId);
      }
    } else {
      this.requests.delete(k);
      if (a.inviter && a.userId !== me) {
        // An invitation I sent was answered ([GR-9a]): the invitee declined (or accepted).
        this.invitedByMe.get(a.groupId)?.delete(a.userId);
        if (a.state === ApplicationState.REJECTED) this.host.toast(`${a.userId} declined the invitation to ${this.name(a.groupId)}`);
        if (this.isManager(a.groupId)) void this.loadPending(a.groupId);
      }
      if (a.userId === me && !a.inviter) {
        this.host.toast(
          `Your application to ${this.name(a.groupId)} was ${a.state === ApplicationState.ACCEPTED ? "accepted" : "rejected"}`,
        );
      }
      void this.refresh(a.groupId);
    }
    this.onRequests();
  }

  /** A tip in a group's log: the group changed; re-read it (once for a burst of tips). */
  onTip(gid: string) {
    if (this.refreshTimers.has(gid)) return;
    this.refreshTimers.set(
      gid,
      setTimeout(() => {
        this.refreshTimers.delete(gid);
        void this.refresh(gid);
      }, 50),
    );
  }

  // ------------------------------------------------------------ who-read receipts ([GR-23])

  receipt(gid: string, seq: bigint): GroupReceipt | undefined {
    return this.receipts.get(gid)?.get(seq);
  }

  receiptsServed(gid: string): boolean {
    return !this.noReceipts.has(gid);
  }

  /** Fetches who-read counts of `seqs` (the user's own recent messages); one request per message. */
  async loadReceipts(gid: string, seqs: bigint[]) {
    const c = this.host.client();
    if (!c || this.noReceipts.has(gid) || this.receiptBusy.has(gid) || !seqs.length) return;
    this.receiptBusy.add(gid);
    let changed = false;
    try {
      const held = this.receipts.get(gid) ?? new Map<bigint, GroupReceipt>();
      this.receipts.set(gid, held);
      for (const seq of seqs) {
        const r = await c.getGroupReceipt({ groupId: gid, seq });
        const old = held.get(seq);
        if (!old || old.readCount !== r.readCount || old.unreadCount !== r.unreadCount) changed = true;
        held.set(seq, r);
      }
    } catch (e) {
      if (e instanceof MissiveError && e.code === RECEIPT_GROUP_TOO_LARGE) this.noReceipts.add(gid);
      else if (!(e instanceof MissiveError && (e.code === 0 || e.code === NOT_GROUP_MEMBER || e.code === 3002))) this.host.showError(e);
    } finally {
      this.receiptBusy.delete(gid);
    }
    if (changed) this.host.changed(gid);
  }

  // ------------------------------------------------------------ actions

  async accept(a: GroupApplication) {
    const c = this.host.client();
    if (!c) return;
    try {
      const r = await c.joinGroup({ groupId: a.groupId, reason: "" });
      this.requests.delete(`${a.groupId}\n${a.userId}`);
      this.onRequests();
      if (r.status === JoinStatus.JOINED) {
        this.mineMap.delete(a.groupId);
        this.ensure(a.groupId);
        this.host.open(`g:${a.groupId}`);
      }
    } catch (e) {
      this.host.showError(e);
    }
  }

  /** Declines my invitation ([GR-9a]): the invitation becomes REJECTED and the inviter is told. */
  async decline(a: GroupApplication) {
    const c = this.host.client();
    if (!c) return;
    try {
      await c.respondGroupApplication({ groupId: a.groupId, userId: a.userId, accept: false });
      this.requests.delete(`${a.groupId}\n${a.userId}`);
      this.onRequests();
    } catch (e) {
      this.host.showError(e);
    }
  }

  async respond(gid: string, uid: string, accept: boolean) {
    const c = this.host.client();
    if (!c) return;
    try {
      await c.respondGroupApplication({ groupId: gid, userId: uid, accept });
      this.requests.delete(`${gid}\n${uid}`);
      this.onRequests();
    } catch (e) {
      this.host.showError(e);
    }
    await this.loadPending(gid);
  }

  async invite(gid: string, users: string[]): Promise<string> {
    const c = this.host.client();
    if (!c || !users.length) return "";
    await c.inviteToGroup({ groupId: gid, userIds: users });
    if (this.info.get(gid)?.inviteeConsent) {
      const set = this.invitedByMe.get(gid) ?? new Set<string>();
      for (const u of users) set.add(u);
      this.invitedByMe.set(gid, set);
      if (this.isManager(gid)) await this.loadPending(gid);
      return `Invited ${users.join(", ")}: waiting for ${users.length > 1 ? "them" : "the invitee"} to accept`;
    }
    return `Added ${users.join(", ")}`;
  }

  forgetInvite(gid: string, uid: string) {
    this.invitedByMe.get(gid)?.delete(uid);
  }

  /** Records a changed member (answers of role / mute / nickname requests). */
  setMember(m: GroupMember) {
    const p = this.members.get(m.groupId);
    if (p) {
      const i = p.list.findIndex((x) => x.userId === m.userId);
      if (i >= 0) p.list[i] = m;
    }
    if (m.userId === this.host.me()) this.mineMap.set(m.groupId, m);
    this.host.changed(m.groupId);
  }

  setGroup(g: GroupInfo) {
    this.setInfo(g);
  }

  markLeft(gid: string) {
    this.mineMap.set(gid, null);
    this.members.delete(gid);
    this.rosters.delete(gid);
    this.host.changed(gid);
  }
}

// ------------------------------------------------------------------ tips (14.8)

/** A group tip in words, from its kind and params (never the raw fallback unless the kind is unknown). */
export function tipText(tip: Tip, who: (uid: string) => string): string {
  const p = tip.params;
  const list = (csv: string | undefined, skip?: string) =>
    (csv ?? "")
      .split(",")
      .filter((u) => u && u !== skip)
      .map(who)
      .join(", ");
  let s: string;
  switch (tip.kind) {
    case "group.created": {
      const others = list(p.members, p.owner);
      s = `${who(p.owner ?? "")} created the group${others ? ` with ${others}` : ""}`;
      break;
    }
    case "group.info_updated":
      s = `${who(p.by ?? "")} updated the group info`;
      break;
    case "group.dismissed":
      s = `${who(p.by ?? "")} dismissed the group`;
      break;
    case "group.member_joined":
      s = p.approved_by ? `${who(p.user ?? "")} joined (approved by ${who(p.approved_by)})` : `${who(p.user ?? "")} joined the group`;
      break;
    case "group.members_invited":
      s = `${who(p.by ?? "")} added ${list(p.users)}`;
      break;
    case "group.members_kicked":
      s = `${who(p.by ?? "")} removed ${list(p.users)}`;
      break;
    case "group.member_quit":
      s = `${who(p.user ?? "")} left the group`;
      break;
    case "group.owner_transferred":
      s = `${who(p.by ?? p.from ?? "")} made ${who(p.to ?? "")} the owner${p.quit === "true" ? ` and ${who(p.from ?? "")} left` : ""}`;
      break;
    case "group.role_changed":
      s =
        p.role === "GROUP_ROLE_ADMIN"
          ? `${who(p.by ?? "")} made ${who(p.user ?? "")} an admin`
          : `${who(p.by ?? "")} made ${who(p.user ?? "")} a member (no longer admin)`;
      break;
    case "group.nickname_changed":
      s = p.nickname ? `${who(p.user ?? "")} is now called “${p.nickname}”` : `${who(p.user ?? "")} cleared their group nickname`;
      break;
    case "group.member_muted": {
      const until = Number(p.until_ms ?? "0");
      s = until
        ? `${who(p.by ?? "")} muted ${who(p.user ?? "")} until ${new Date(until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`
        : `${who(p.by ?? "")} unmuted ${who(p.user ?? "")}`;
      break;
    }
    case "group.mute_all":
      s = p.muted === "true" ? `${who(p.by ?? "")} muted the group: only the owner and admins can send` : `${who(p.by ?? "")} unmuted the group`;
      break;
    default:
      return tip.text || `[${tip.kind}]`;
  }
  return s.startsWith("you ") ? `Y${s.slice(1)}` : s;
}

/** Tip kinds that may change who is in the group or what the user may do. */
export const isGroupTip = (kind: string) => kind.startsWith("group.");

// ------------------------------------------------------------------ the group panel

const JOIN_MODES: [JoinMode, string][] = [
  [JoinMode.ANYONE, "Anyone can join"],
  [JoinMode.APPROVAL, "Join by application (approval)"],
  [JoinMode.INVITE_ONLY, "By invitation only"],
  [JoinMode.NOBODY, "Closed"],
];
const INVITE_MODES: [InviteMode, string][] = [
  [InviteMode.ANY_MEMBER, "Any member can invite"],
  [InviteMode.ADMINS, "Only owner and admins invite"],
];
const EDIT_MODES: [EditMode, string][] = [
  [EditMode.EVERYONE, "Every member edits the info"],
  [EditMode.ADMINS, "Only owner and admins edit the info"],
];
const HISTORY: [HistoryVisibility, string][] = [
  [HistoryVisibility.FROM_JOIN, "New members read from their join"],
  [HistoryVisibility.FULL, "New members read the whole history"],
];

/** Only http(s) URLs are loaded as avatars. */
function httpUrl(u: string): string | undefined {
  try {
    const url = new URL(u, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}

export class GroupPanel {
  gid: string | undefined;
  private editing = false;
  private inviteStatus = "";
  private inviteFor: string[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly store: GroupStore,
    private readonly host: GroupHost,
    private readonly onClose: () => void,
  ) {
    // Fields the user typed in keep their text across re-renders (see `render`).
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !(e.target as HTMLElement).matches("select")) {
        e.preventDefault();
        this.onClose();
      }
    });
    root.addEventListener("input", (e) => {
      const t = e.target as HTMLElement;
      if (t.matches("input:not([type=checkbox]), textarea")) t.dataset.dirty = "1";
    });
  }

  open(gid: string) {
    if (this.gid !== gid) {
      this.editing = false;
      this.inviteStatus = "";
      this.inviteFor = [];
    }
    this.gid = gid;
    this.root.hidden = false;
    this.render();
    void this.store.loadMembers(gid, false);
    if (this.store.isManager(gid)) void this.store.loadPending(gid);
  }

  close() {
    this.gid = undefined;
    this.root.hidden = true;
    this.root.replaceChildren();
  }

  get isOpen() {
    return this.gid !== undefined;
  }

  /** Re-renders unless the user is typing in a field of the panel (kept until saved or left). */
  render() {
    const gid = this.gid;
    if (!gid) return;
    const active = document.activeElement;
    const focusKey = active instanceof HTMLElement && this.root.contains(active) ? active.dataset.testid : undefined;
    const caret = active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement ? [active.selectionStart, active.selectionEnd] : undefined;
    const drafts = new Map<string, string>();
    for (const el of Array.from(this.root.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>("[data-dirty][data-testid]"))) {
      drafts.set(el.dataset.testid!, el.value);
    }
    const info = this.store.get(gid);
    const me = this.host.me();
    const mine = this.store.mine(gid);
    const role = this.store.role(gid);
    const owner = role === GroupRole.OWNER;
    const manager = this.store.isManager(gid);
    const ended = this.store.ended(gid);
    const canEdit = !ended && !!mine && (manager || info?.editMode === EditMode.EVERYONE);
    // The invitation note stays until the invited users show up as members.
    if (this.inviteStatus && this.inviteFor.length && this.inviteFor.every((u) => this.store.memberPages(gid)?.list.some((m) => m.userId === u))) {
      this.inviteStatus = "";
      this.inviteFor = [];
    }
    const canInvite =
      !ended && !!mine && info?.joinMode !== JoinMode.NOBODY && (manager || info?.inviteMode === InviteMode.ANY_MEMBER);

    const head = h(
      "div",
      { class: "gp-head" },
      h("h2", { id: "gp-title" }, "Group info"),
      h("button", { type: "button", class: "icon", "aria-label": "Close group info", testid: "group-panel-close", onclick: () => this.onClose() }, "✕"),
    );
    const sections: HTMLElement[] = [head];

    // -------- info
    const av = h("span", { class: "avatar big", "aria-hidden": "true" });
    const url = info?.avatarUrl ? httpUrl(info.avatarUrl) : undefined;
    if (url) av.append(h("img", { src: url, alt: "" }));
    else {
      av.textContent = (info?.name || gid).slice(0, 1);
      av.style.background = "#4f46e5";
    }
    if (this.editing && canEdit && info) {
      const name = h("input", { testid: "edit-name", value: info.name, maxlength: "128", "aria-label": "Group name" });
      const avatar = h("input", { testid: "edit-avatar", value: info.avatarUrl, type: "url", "aria-label": "Avatar URL", placeholder: "https://…" });
      const notice = h("textarea", { testid: "edit-notice", rows: "2", "aria-label": "Notice" });
      notice.value = info.notice;
      const intro = h("textarea", { testid: "edit-intro", rows: "2", "aria-label": "Introduction" });
      intro.value = info.introduction;
      const form = h(
        "form",
        {
          class: "gp-edit",
          "aria-label": "Edit group info",
          onsubmit: async (e: Event) => {
            e.preventDefault();
            const c = this.host.client();
            if (!c) return;
            try {
              const g = await c.updateGroup({
                groupId: gid,
                patch: { name: name.value.trim(), avatarUrl: avatar.value.trim(), notice: notice.value, introduction: intro.value },
              });
              this.editing = false;
              this.store.setGroup(g);
            } catch (err) {
              this.host.showError(err);
            }
            this.render();
          },
        },
        h("label", {}, "Name", name),
        h("label", {}, "Avatar URL", avatar),
        h("label", {}, "Notice", notice),
        h("label", {}, "Introduction", intro),
        h(
          "div",
          { class: "row" },
          h("button", { type: "submit", testid: "edit-save" }, "Save"),
          h("button", { type: "button", class: "secondary", testid: "edit-cancel", onclick: () => ((this.editing = false), this.render()) }, "Cancel"),
        ),
      );
      sections.push(h("section", { class: "gp-info" }, form));
    } else {
      sections.push(
        h(
          "section",
          { class: "gp-info", "aria-label": "About the group" },
          h(
            "div",
            { class: "gp-title" },
            av,
            h(
              "div",
              {},
              h("strong", { testid: "group-name" }, info?.name || gid),
              h("span", { class: "muted small" }, "id ", h("code", { testid: "group-id" }, gid)),
              h("span", { class: "muted small", testid: "group-member-count" }, info ? `${info.memberCount} member${info.memberCount === 1 ? "" : "s"}` : ""),
            ),
          ),
          info?.notice ? h("div", { class: "gp-notice" }, h("strong", {}, "Notice "), h("span", { testid: "group-notice" }, info.notice)) : undefined,
          info?.introduction ? h("p", { class: "gp-intro", testid: "group-intro" }, info.introduction) : undefined,
          info?.muteAll ? h("p", { class: "gp-flag", testid: "group-muted-all" }, "Muted: only the owner and admins can send") : undefined,
          ended ? h("p", { class: "gp-flag" }, info?.dismissed ? "This group was dismissed." : "You are not a member of this group.") : undefined,
          canEdit
            ? h("button", { type: "button", class: "secondary", testid: "group-edit", onclick: () => ((this.editing = true), this.render()) }, "Edit info")
            : undefined,
        ),
      );
    }

    // -------- my membership
    if (mine && !ended) {
      const nick = h("input", {
        testid: "my-nickname",
        value: mine.nickname,
        maxlength: "64",
        "aria-label": "My nickname in this group",
        placeholder: "Nickname in this group",
      });
      sections.push(
        h(
          "section",
          { class: "gp-me", "aria-label": "Me in this group" },
          h("h3", {}, "Me in this group"),
          h(
            "form",
            {
              class: "row",
              onsubmit: async (e: Event) => {
                e.preventDefault();
                const c = this.host.client();
                if (!c) return;
                try {
                  this.store.setMember(await c.setGroupNickname({ groupId: gid, userId: "", nickname: nick.value.trim() }));
                  delete nick.dataset.dirty;
                } catch (err) {
                  this.host.showError(err);
                }
                this.render();
              },
            },
            nick,
            h("button", { type: "submit", class: "secondary", testid: "my-nickname-save" }, "Save"),
          ),
          h("p", { class: "muted small", testid: "my-role" }, `Your role: ${roleName(role)}`),
        ),
      );
    }

    // -------- members
    const pages = this.store.memberPages(gid);
    const rows = (pages?.list ?? []).map((m) => this.memberRow(gid, m, me, role));
    sections.push(
      h(
        "section",
        { class: "gp-members", "aria-labelledby": "gp-members-title" },
        h("h3", { id: "gp-members-title" }, `Members${pages ? ` (${pages.count})` : ""}`),
        h("ul", { class: "member-list", testid: "member-list" }, ...rows),
        pages?.next
          ? h("button", { type: "button", class: "secondary", testid: "members-more", onclick: () => void this.store.loadMembers(gid, true) }, "Load more members")
          : undefined,
      ),
    );

    // -------- invite
    if (canInvite) {
      const input = h("input", { testid: "invite-users", placeholder: "user ids, comma separated", "aria-label": "Users to invite" });
      const local = this.store.invitedLocally(gid).filter((u) => !this.store.pending(gid).some((a) => a.userId === u));
      sections.push(
        h(
          "section",
          { class: "gp-invite", "aria-labelledby": "gp-invite-title" },
          h("h3", { id: "gp-invite-title" }, "Invite"),
          info?.inviteeConsent ? h("p", { class: "muted small" }, "Invitees join once they accept.") : undefined,
          h(
            "form",
            {
              class: "row",
              onsubmit: async (e: Event) => {
                e.preventDefault();
                const users = input.value.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
                if (!users.length) return;
                try {
                  this.inviteStatus = await this.store.invite(gid, users);
                  this.inviteFor = users;
                  input.value = "";
                  delete input.dataset.dirty;
                } catch (err) {
                  this.inviteStatus = "";
                  this.host.showError(err);
                }
                this.render();
              },
            },
            input,
            h("button", { type: "submit", testid: "invite-go" }, "Invite"),
          ),
          h("p", { class: "status", role: "status", testid: "invite-status" }, this.inviteStatus),
          local.length
            ? h(
                "ul",
                { class: "pending-list" },
                ...local.map((u) => h("li", { testid: `pending-invite-${u}` }, `${u} — invited, waiting to accept`)),
              )
            : undefined,
        ),
      );
    }

    // -------- pending applications and invitations (owner / admins)
    if (manager && !ended) {
      const pending = this.store.pending(gid);
      const apps = pending.filter((a) => !a.inviter);
      const invs = pending.filter((a) => a.inviter);
      sections.push(
        h(
          "section",
          { class: "gp-pending", "aria-labelledby": "gp-pending-title" },
          h("h3", { id: "gp-pending-title" }, "Requests"),
          !pending.length ? h("p", { class: "muted small" }, "No pending applications or invitations.") : undefined,
          h(
            "ul",
            { class: "pending-list", testid: "pending-list" },
            ...apps.map((a) =>
              h(
                "li",
                { testid: `application-${a.userId}` },
                h("span", {}, `${a.userId} applies`, a.reason ? h("em", {}, ` “${a.reason}”`) : ""),
                h("button", { type: "button", testid: `app-approve-${a.userId}`, "aria-label": `Approve ${a.userId}`, onclick: () => void this.store.respond(gid, a.userId, true) }, "Approve"),
                h("button", { type: "button", class: "secondary", testid: `app-reject-${a.userId}`, "aria-label": `Reject ${a.userId}`, onclick: () => void this.store.respond(gid, a.userId, false) }, "Reject"),
              ),
            ),
            ...invs.map((a) => h("li", { testid: `pending-invite-${a.userId}` }, `${a.userId} — invited by ${a.inviter}, waiting to accept`)),
          ),
        ),
      );
    }

    // -------- settings (owner / admins)
    if (manager && !ended && info) {
      const select = (testid: string, label: string, opts: [number, string][], value: number, patch: (v: number) => object) =>
        h(
          "label",
          {},
          label,
          h(
            "select",
            {
              testid,
              onchange: (e: Event) => void this.update(gid, patch(Number((e.target as HTMLSelectElement).value))),
            },
            ...opts.map(([v, t]) => h("option", { value: String(v), selected: v === value ? true : undefined }, t)),
          ),
        );
      sections.push(
        h(
          "section",
          { class: "gp-settings", "aria-labelledby": "gp-settings-title" },
          h("h3", { id: "gp-settings-title" }, "Settings"),
          select("set-join-mode", "Joining", JOIN_MODES, info.joinMode, (v) => ({ joinMode: v })),
          select("set-invite-mode", "Inviting", INVITE_MODES, info.inviteMode, (v) => ({ inviteMode: v })),
          select("set-edit-mode", "Editing", EDIT_MODES, info.editMode, (v) => ({ editMode: v })),
          select("set-history", "History", HISTORY, info.historyVisibility, (v) => ({ historyVisibility: v })),
          h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              testid: "set-consent",
              checked: info.inviteeConsent,
              onchange: (e: Event) => void this.update(gid, { inviteeConsent: (e.target as HTMLInputElement).checked }),
            }),
            " Invitees must accept invitations",
          ),
          h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              testid: "set-mute-all",
              checked: info.muteAll,
              onchange: (e: Event) => void this.muteAll(gid, (e.target as HTMLInputElement).checked),
            }),
            " Mute everyone (only owner and admins send)",
          ),
        ),
      );
    }

    // -------- leave / dismiss
    if (mine && !ended) {
      sections.push(
        h(
          "section",
          { class: "gp-danger", "aria-label": "Leave or dismiss" },
          owner
            ? h("button", { type: "button", class: "danger", testid: "group-dismiss", onclick: () => void this.dismiss(gid) }, "Dismiss group")
            : h("button", { type: "button", class: "danger", testid: "group-leave", onclick: () => void this.leave(gid) }, "Leave group"),
          owner ? h("p", { class: "muted small" }, "To leave, make another member the owner first.") : undefined,
        ),
      );
    }

    this.root.setAttribute("aria-labelledby", "gp-title");
    this.root.replaceChildren(...sections);
    for (const [k, v] of drafts) {
      const el = this.root.querySelector<HTMLInputElement | HTMLTextAreaElement>(`[data-testid="${CSS.escape(k)}"]`);
      if (el) {
        el.value = v;
        el.dataset.dirty = "1";
      }
    }
    if (focusKey) {
      const el = this.root.querySelector<HTMLElement>(`[data-testid="${CSS.escape(focusKey)}"]`);
      el?.focus();
      if (caret && (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement) && el.type !== "checkbox") {
        try {
          el.setSelectionRange(caret[0], caret[1]);
        } catch {
          /* a field kind without a caret */
        }
      }
    }
  }

  private memberRow(gid: string, m: GroupMember, me: string, myRole: GroupRole): HTMLElement {
    const now = Date.now();
    const muted = m.muteUntilMs > BigInt(now);
    const self = m.userId === me;
    const owner = myRole === GroupRole.OWNER;
    // [GR-5]: the owner acts on anyone but themselves; an admin on ordinary members only.
    const outranks = !self && (owner || (myRole === GroupRole.ADMIN && m.role === GroupRole.MEMBER));
    const acts: HTMLElement[] = [];
    const ended = this.store.ended(gid);
    if (!ended && owner && !self) {
      const admin = m.role === GroupRole.ADMIN;
      acts.push(
        h(
          "button",
          {
            type: "button",
            class: "act",
            testid: `member-admin-${m.userId}`,
            "aria-label": admin ? `Remove ${m.userId} as admin` : `Make ${m.userId} an admin`,
            onclick: () => void this.setRole(gid, m.userId, admin ? GroupRole.MEMBER : GroupRole.ADMIN),
          },
          admin ? "Unset admin" : "Make admin",
        ),
      );
    }
    if (!ended && outranks) {
      acts.push(
        h(
          "button",
          {
            type: "button",
            class: "act",
            testid: `member-mute-${m.userId}`,
            "aria-label": muted ? `Unmute ${m.userId}` : `Mute ${m.userId} for one hour`,
            onclick: () => void this.mute(gid, m.userId, muted ? 0 : 3600),
          },
          muted ? "Unmute" : "Mute 1 h",
        ),
        h(
          "button",
          {
            type: "button",
            class: "act",
            testid: `member-kick-${m.userId}`,
            "aria-label": `Remove ${m.userId} from the group`,
            onclick: () => void this.kick(gid, m.userId),
          },
          "Remove",
        ),
      );
    }
    if (!ended && owner && !self) {
      acts.push(
        h(
          "button",
          {
            type: "button",
            class: "act",
            testid: `member-transfer-${m.userId}`,
            "aria-label": `Make ${m.userId} the owner`,
            onclick: () => void this.transfer(gid, m.userId),
          },
          "Make owner",
        ),
      );
    }
    const av = h("span", { class: "avatar small", "aria-hidden": "true" }, m.userId.slice(0, 1));
    av.style.background = "#6b7280";
    return h(
      "li",
      { class: "member", testid: `member-${m.userId}` },
      av,
      h(
        "span",
        { class: "member-name" },
        m.nickname ? h("strong", {}, m.nickname) : h("strong", {}, m.userId),
        m.nickname ? h("span", { class: "muted small" }, ` ${m.userId}`) : "",
        self ? h("span", { class: "muted small" }, " (you)") : "",
      ),
      m.role !== GroupRole.MEMBER ? h("span", { class: `role ${m.role === GroupRole.OWNER ? "owner" : "admin"}`, testid: `role-${m.userId}` }, roleName(m.role)) : "",
      muted
        ? h(
            "span",
            { class: "tag muted-tag", testid: `muted-${m.userId}`, title: `Muted until ${new Date(Number(m.muteUntilMs)).toLocaleString()}` },
            "muted",
          )
        : "",
      acts.length ? h("span", { class: "member-acts", role: "group", "aria-label": `Actions for ${m.userId}` }, ...acts) : "",
    );
  }

  private async update(gid: string, patch: object) {
    const c = this.host.client();
    if (!c) return;
    try {
      this.store.setGroup(await c.updateGroup({ groupId: gid, patch }));
    } catch (e) {
      this.host.showError(e);
    }
    this.render();
  }

  private async muteAll(gid: string, muted: boolean) {
    const c = this.host.client();
    if (!c) return;
    try {
      this.store.setGroup(await c.muteGroupAll({ groupId: gid, muted }));
    } catch (e) {
      this.host.showError(e);
    }
    this.render();
  }

  private async setRole(gid: string, uid: string, role: GroupRole) {
    const c = this.host.client();
    if (!c) return;
    try {
      this.store.setMember(await c.setGroupRole({ groupId: gid, userId: uid, role }));
    } catch (e) {
      this.host.showError(e);
    }
  }

  private async mute(gid: string, uid: string, secs: number) {
    const c = this.host.client();
    if (!c) return;
    try {
      this.store.setMember(await c.muteGroupMember({ groupId: gid, userId: uid, durationSecs: BigInt(secs) }));
    } catch (e) {
      this.host.showError(e);
    }
  }

  private async kick(gid: string, uid: string) {
    const c = this.host.client();
    if (!c || !confirm(`Remove ${uid} from the group?`)) return;
    try {
      await c.kickFromGroup({ groupId: gid, userIds: [uid] });
    } catch (e) {
      this.host.showError(e);
    }
    await this.store.loadMembers(gid, false);
  }

  private async transfer(gid: string, uid: string) {
    const c = this.host.client();
    if (!c || !confirm(`Make ${uid} the owner of the group? You become a member.`)) return;
    try {
      this.store.setGroup(await c.transferGroup({ groupId: gid, newOwner: uid, quit: false }));
    } catch (e) {
      this.host.showError(e);
    }
    await this.store.refresh(gid);
  }

  private async leave(gid: string) {
    const c = this.host.client();
    if (!c || !confirm("Leave this group?")) return;
    try {
      await c.quitGroup({ groupId: gid });
      this.store.markLeft(gid);
    } catch (e) {
      this.host.showError(e);
    }
    this.render();
  }

  private async dismiss(gid: string) {
    const c = this.host.client();
    if (!c || !confirm("Dismiss this group for everyone? This cannot be undone.")) return;
    try {
      await c.dismissGroup({ groupId: gid });
      this.store.markLeft(gid);
    } catch (e) {
      this.host.showError(e);
    }
    await this.store.refresh(gid);
    this.render();
  }
}

// ------------------------------------------------------------------ the sidebar's group requests

export function renderRequests(section: HTMLElement, list: HTMLElement, store: GroupStore, me: string) {
  const items = [...store.requests.values()].filter((a) => a.state === ApplicationState.PENDING);
  section.hidden = items.length === 0;
  list.replaceChildren(
    ...items.map((a) => {
      const name = store.name(a.groupId);
      if (a.userId === me && a.inviter) {
        return h(
          "li",
          { class: "request", testid: `invite-${a.groupId}` },
          h("span", {}, h("strong", {}, a.inviter), ` invites you to `, h("strong", {}, name)),
          h("button", { type: "button", testid: `invite-accept-${a.groupId}`, "aria-label": `Accept the invitation to ${name}`, onclick: () => void store.accept(a) }, "Accept"),
          h("button", { type: "button", class: "secondary", testid: `invite-decline-${a.groupId}`, "aria-label": `Decline the invitation to ${name}`, onclick: () => void store.decline(a) }, "Decline"),
        );
      }
      return h(
        "li",
        { class: "request", testid: `request-${a.groupId}-${a.userId}` },
        h("span", {}, h("strong", {}, a.userId), ` asks to join `, h("strong", {}, name), a.reason ? h("em", {}, ` “${a.reason}”`) : ""),
        h("button", { type: "button", testid: `request-approve-${a.groupId}-${a.userId}`, "aria-label": `Approve ${a.userId}`, onclick: () => void store.respond(a.groupId, a.userId, true) }, "Approve"),
        h("button", { type: "button", class: "secondary", testid: `request-reject-${a.groupId}-${a.userId}`, "aria-label": `Reject ${a.userId}`, onclick: () => void store.respond(a.groupId, a.userId, false) }, "Reject"),
      );
    }),
  );
}

/** Options of the create-group dialog, as `CreateGroup` fields. */
export function createGroupRequest(o: { id: string; name: string; members: string[]; type: number; consent: boolean }) {
  return {
    groupId: o.id,
    type: o.type === GroupType.PUBLIC ? GroupType.PUBLIC : GroupType.WORK,
    info: { name: o.name, ...(o.consent ? { inviteeConsent: true } : {}) },
    memberIds: o.members,
    maxMembers: 0,
  };
}

export { GroupNotify, GroupRole, JoinStatus };
