/**
 * Display names of other users on the chat page: my remark for a friend, else
 * their profile nickname, else the user id (as the Contacts view's `nameOf`).
 *
 * `name(uid)` answers at once from the cache; an id not cached (or cached
 * before the last reconnect) is queued and read in batches of at most 100 ids
 * (`getProfiles` for the nickname, `checkRelations` for the remark, spec 12,
 * 13), after which `onChange` fires once. `profile` and `relation` events
 * (pushes and sync pages) update the cache as they come.
 *
 * Invariants: the cache holds at most `max` users (the least recently shown
 * go first); an id is asked for at most once per session (a failed read
 * waits for the next `online()`, never retried in a loop); my own id is
 * never looked up here.
 */
import type { MissiveClient, Profile, Relation } from "../src/index.ts";
import { chunks } from "./context.ts";

interface Entry {
  nickname: string;
  remark: string;
  /** The session (`online()` count) the entry was read in. */
  epoch: number;
}

export class Names {
  private cache = new Map<string, Entry>();
  private queue = new Set<string>();
  private asked = new Set<string>();
  private timer?: ReturnType<typeof setTimeout>;
  private epoch = 0;
  /** Called (once per batch) when names changed. */
  onChange: () => void = () => {};
  /** A failed read (the page leaves "not connected" to the reconnect and shows a refusal). */
  onError: (e: unknown) => void = () => {};

  constructor(
    private readonly client: () => MissiveClient | undefined,
    private readonly me: () => string,
    private readonly max = 1000,
  ) {}

  /** The name to show for `uid`: remark, else nickname, else the id. Queues a read when unknown or stale. */
  name(uid: string): string {
    if (!uid || uid === this.me()) return uid;
    const e = this.cache.get(uid);
    if (e) {
      // Least recently shown first out: a shown entry moves to the end.
      this.cache.delete(uid);
      this.cache.set(uid, e);
    }
    if (!e || e.epoch < this.epoch) this.want([uid]);
    return e?.remark || e?.nickname || uid;
  }

  /** The cached name (remark, else nickname) of `uid`, if any; never reads. */
  peek(uid: string): string | undefined {
    const e = this.cache.get(uid);
    return e?.remark || e?.nickname || undefined;
  }

  /** Queues reads of the ids not cached for this session (e.g. the peers of the listed conversations). */
  want(ids: string[]) {
    for (const u of ids) {
      if (!u || u === this.me() || this.asked.has(u)) continue;
      const e = this.cache.get(u);
      if (e && e.epoch >= this.epoch) continue;
      this.asked.add(u);
      this.queue.add(u);
    }
    if (this.queue.size && !this.timer) this.timer = setTimeout(() => void this.flush(), 30);
  }

  /** A `profile` event: a friend's (or a synced) profile. */
  onProfile(p: Profile) {
    if (p.userId === this.me()) return;
    const e = this.cache.get(p.userId);
    if (!e) return; // not shown here: read when it is
    if (e.nickname === p.nickname) return;
    e.nickname = p.nickname;
    this.onChange();
  }

  /** A `relation` event (or a Relation answered to a request): the remark I gave them. */
  onRelation(r: Relation) {
    const e = this.cache.get(r.userId);
    if (!e) return;
    const remark = r.isFriend ? r.remark : "";
    if (e.remark === remark) return;
    e.remark = remark;
    this.onChange();
  }

  /** The session is (back) online: every cached name is read again when next shown; failed reads are retried. */
  online() {
    this.epoch++;
    this.asked.clear();
  }

  reset() {
    this.cache.clear();
    this.queue.clear();
    this.asked.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async flush() {
    this.timer = undefined;
    const c = this.client();
    const ids = [...this.queue].slice(0, 500);
    for (const u of ids) this.queue.delete(u);
    if (!c || !ids.length) return;
    const epoch = this.epoch;
    let changed = false;
    for (const batch of chunks(ids, 100)) {
      try {
        const [profiles, relations] = await Promise.all([c.getProfiles({ userIds: batch }), c.checkRelations({ userIds: batch })]);
        const nick = new Map(profiles.profiles.map((p) => [p.userId, p.nickname]));
        const remark = new Map(relations.relations.map((r) => [r.userId, r.isFriend ? r.remark : ""]));
        for (const u of batch) {
          const old = this.cache.get(u);
          const e: Entry = { nickname: nick.get(u) ?? "", remark: remark.get(u) ?? "", epoch };
          if (!old || old.nickname !== e.nickname || old.remark !== e.remark) changed = true;
          this.cache.delete(u);
          this.cache.set(u, e);
        }
      } catch (e) {
        // Shown by id meanwhile; asked again after the next `online()`.
        this.onError(e);
      }
    }
    while (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value as string);
    if (changed) this.onChange();
    if (this.queue.size && !this.timer) this.timer = setTimeout(() => void this.flush(), 30);
  }
}
