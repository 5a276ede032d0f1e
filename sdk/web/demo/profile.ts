/**
 * The Me view of the chat page (spec 12.2 and 12.4): my profile (nickname,
 * avatar URL, gender, birthday, signature, custom `ex` fields, and who may add
 * me as a friend — `friend_verification`), my presence custom status, and my
 * friends' presence (dot and custom status) kept live by `presence` and
 * `profile` pushes through the shared contacts store.
 *
 * Invariants: a save sends a `ProfilePatch` with only the fields that differ
 * from the profile the broker last returned (unset fields are kept by the
 * broker; a removed `ex` key is sent with an empty value, [PR-1]); the form
 * shows the broker's answer after a save, and a push of my profile from
 * another device replaces the form only while it has no unsaved edits.
 * Every failed request is shown inline as "NAME (code): message" (describeError).
 * The DOM lives inside `root` only and carries no markup from broker data.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FriendVerification, Gender, PresenceSchema, type Profile, type ProfilePatchSchema } from "../src/index.ts";
import { contactsStore, keepFocus, nameOf, onlineOf } from "./contacts.ts";
import { avatarOf, btn, ensureStyles, h, messageAreas, type PageContext } from "./context.ts";

type PatchInit = MessageInitShape<typeof ProfilePatchSchema>;

export function mountProfile(root: HTMLElement, ctx: PageContext): { refresh(): void; dispose(): void } {
  ensureStyles();
  const { client, me } = ctx;
  const s = contactsStore(client, me);
  const msg = messageAreas("profile");

  /** The profile the broker last returned for me. */
  let saved: Profile | undefined;
  let dirty = false;
  /** The `ex` map being edited (insertion order kept). */
  let exDraft = new Map<string, string>();

  // ---- header
  const head = h("div", { className: "ct-card ct-me", testid: "me-card" });
  function renderHead() {
    const p = s.profiles.get(me);
    const pres = s.presence.get(me);
    head.replaceChildren(
      avatarOf(me, p?.nickname ?? "", p?.avatarUrl, true, "my-presence-dot"),
      h(
        "div",
        { className: "ct-main" },
        h("strong", { testid: "me-display-name" }, p?.nickname || me),
        h("span", { className: "ct-sub" }, `@${me}`),
        h("span", { className: "ct-statustext", testid: "my-status-text" }, pres?.statusText || "No status set"),
        p?.signature ? h("span", { className: "ct-sub ct-sig" }, p.signature) : undefined,
      ),
    );
  }

  // ---- status
  const statusInput = h("input", {
    id: "pf-status",
    testid: "presence-status-input",
    placeholder: "What's up? (e.g. In a meeting)",
    maxLength: 256,
    autocomplete: "off",
  });
  const statusForm = h(
    "form",
    { className: "ct-form", "aria-label": "Custom status" },
    h("label", { for: "pf-status" }, "Custom status (friends who follow your presence see it)"),
    h(
      "div",
      { className: "ct-inline" },
      statusInput,
      h("button", { type: "submit", testid: "presence-status-set" }, "Set"),
      btn("Clear", "Clear my custom status", "presence-status-clear", () => void setStatus(""), "ct-secondary"),
    ),
  );
  statusForm.addEventListener("submit", (e) => {
    e.preventDefault();
    void setStatus(statusInput.value.trim());
  });

  async function setStatus(text: string) {
    try {
      await client.setPresenceStatus({ text });
      // My own device gets no push of its own change ([PS-4]): update the held copy.
      const held = s.presence.get(me);
      if (held) held.statusText = text;
      else s.presence.set(me, create(PresenceSchema, { userId: me, online: true, statusText: text }));
      statusInput.value = text;
      renderHead();
      msg.ok(text ? `Status set: “${text}”.` : "Status cleared.");
    } catch (e) {
      msg.fail(e, "Could not set the status");
    }
  }

  // ---- profile form
  const field = <T extends HTMLElement>(id: string, label: string, control: T, hint?: string) =>
    h("div", { className: "ct-field" }, h("label", { for: id }, label), control, hint ? h("span", { className: "ct-hint", id: `${id}-hint` }, hint) : undefined);
  const nickname = h("input", { id: "pf-nick", testid: "profile-nickname", maxLength: 64, autocomplete: "nickname" });
  const avatarUrl = h("input", { id: "pf-avatar", testid: "profile-avatar-url", type: "url", placeholder: "https://…", maxLength: 1024, "aria-describedby": "pf-avatar-hint" });
  const gender = h(
    "select",
    { id: "pf-gender", testid: "profile-gender" },
    h("option", { value: String(Gender.UNSPECIFIED) }, "Not specified"),
    h("option", { value: String(Gender.FEMALE) }, "Female"),
    h("option", { value: String(Gender.MALE) }, "Male"),
    h("option", { value: String(Gender.OTHER) }, "Other"),
  );
  const birthday = h("input", { id: "pf-birthday", testid: "profile-birthday", type: "date" });
  const signature = h("textarea", { id: "pf-sig", testid: "profile-signature", rows: 2, maxLength: 256 });
  const verification = h(
    "select",
    { id: "pf-verify", testid: "profile-friend-verification", "aria-describedby": "pf-verify-hint" },
    h("option", { value: String(FriendVerification.NEED_APPROVAL) }, "I approve each request"),
    h("option", { value: String(FriendVerification.ALLOW_ANYONE) }, "Anyone can add me directly"),
    h("option", { value: String(FriendVerification.DENY_ALL) }, "Nobody can add me"),
  );
  const exList = h("ul", { className: "ct-list ct-ex", testid: "profile-ex-list", "aria-label": "Custom fields" });
  const exKey = h("input", { testid: "profile-ex-key", "aria-label": "New field name", placeholder: "field (e.g. city)", maxLength: 64 });
  const exValue = h("input", { testid: "profile-ex-value", "aria-label": "New field value", placeholder: "value" });
  const saveBtn = h("button", { type: "submit", testid: "profile-save" }, "Save profile");
  const form = h(
    "form",
    { className: "ct-form ct-profile", testid: "profile-form", "aria-label": "My profile" },
    field("pf-nick", "Nickname", nickname),
    field("pf-avatar", "Avatar URL", avatarUrl, "An http(s) image address."),
    h("div", { className: "ct-two" }, field("pf-gender", "Gender", gender), field("pf-birthday", "Birthday", birthday)),
    field("pf-sig", "Signature", signature),
    field("pf-verify", "Who can add me as a friend", verification, "Others see this when they look you up."),
    h(
      "fieldset",
      { className: "ct-fieldset" },
      h("legend", {}, "Custom fields"),
      exList,
      h(
        "div",
        { className: "ct-inline" },
        exKey,
        exValue,
        btn("Add", "Add this custom field", "profile-ex-add", () => {
          const k = exKey.value.trim();
          if (!k) return exKey.focus();
          exDraft.set(k, exValue.value);
          exKey.value = exValue.value = "";
          markDirty();
          renderEx();
          exKey.focus();
        }, "ct-secondary"),
      ),
    ),
    h(
      "div",
      { className: "ct-inline" },
      saveBtn,
      btn("Undo changes", "Undo changes to the profile", "profile-reset", () => {
        dirty = false;
        fillForm();
        msg.clear();
      }, "ct-secondary"),
    ),
  );
  const markDirty = () => {
    dirty = true;
  };
  form.addEventListener("input", (e) => {
    if (e.target !== exKey && e.target !== exValue) markDirty();
  });
  for (const el of [exKey, exValue]) {
    el.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        root.querySelector<HTMLButtonElement>('[data-testid="profile-ex-add"]')?.click();
      }
    });
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void save();
  });

  function renderEx() {
    keepFocus(exList, () =>
      exList.replaceChildren(
        ...[...exDraft].map(([k, v]) =>
          h(
            "li",
            { className: "ct-row ct-exrow", testid: `profile-ex-${k}` },
            h("span", { className: "ct-exkey" }, k),
            h("input", {
              value: v,
              "aria-label": `Value of ${k}`,
              testid: `profile-ex-value-${k}`,
              oninput: (e: Event) => {
                exDraft.set(k, (e.target as HTMLInputElement).value);
                markDirty();
              },
            }),
            btn("Remove", `Remove the field ${k}`, `profile-ex-remove-${k}`, () => {
              exDraft.delete(k);
              markDirty();
              renderEx();
              exKey.focus();
            }, "ct-small ct-secondary"),
          ),
        ),
      ),
    );
  }

  function fillForm() {
    const p = saved;
    nickname.value = p?.nickname ?? "";
    avatarUrl.value = p?.avatarUrl ?? "";
    gender.value = String(p?.gender ?? Gender.UNSPECIFIED);
    birthday.value = p?.birthday ?? "";
    signature.value = p?.signature ?? "";
    verification.value = String(p?.friendVerification ?? FriendVerification.NEED_APPROVAL);
    exDraft = new Map(Object.entries(p?.ex ?? {}).sort(([a], [b]) => a.localeCompare(b)));
    renderEx();
  }

  /** The fields that differ from the saved profile. */
  function patchOf(): PatchInit {
    const p = saved;
    const patch: PatchInit = {};
    if (nickname.value.trim() !== (p?.nickname ?? "")) patch.nickname = nickname.value.trim();
    if (avatarUrl.value.trim() !== (p?.avatarUrl ?? "")) patch.avatarUrl = avatarUrl.value.trim();
    if (Number(gender.value) !== (p?.gender ?? Gender.UNSPECIFIED)) patch.gender = Number(gender.value) as Gender;
    if (birthday.value !== (p?.birthday ?? "")) patch.birthday = birthday.value;
    if (signature.value.trim() !== (p?.signature ?? "")) patch.signature = signature.value.trim();
    const fv = Number(verification.value) as FriendVerification;
    if (fv !== (p?.friendVerification ?? FriendVerification.NEED_APPROVAL)) patch.friendVerification = fv;
    const ex: Record<string, string> = {};
    const before = p?.ex ?? {};
    for (const [k, v] of exDraft) if (before[k] !== v) ex[k] = v;
    for (const k of Object.keys(before)) if (!exDraft.has(k)) ex[k] = "";
    if (Object.keys(ex).length) patch.ex = ex;
    return patch;
  }

  async function save() {
    const patch = patchOf();
    if (!Object.keys(patch).length) {
      dirty = false;
      return msg.ok("Nothing to save: the profile is unchanged.");
    }
    saveBtn.disabled = true;
    try {
      const p = await client.setProfile({ patch });
      saved = p;
      s.profiles.set(me, p);
      dirty = false;
      fillForm();
      renderHead();
      msg.ok("Profile saved.");
    } catch (e) {
      msg.fail(e, "Could not save the profile");
    } finally {
      saveBtn.disabled = false;
    }
  }

  // ---- friends' presence
  const presList = h("ul", { className: "ct-list", testid: "friends-presence", "aria-label": "Friends' presence" });
  function renderPresence() {
    const ids = [...s.friends.keys()].sort((a, b) => {
      const oa = onlineOf(s, ctx, a) ? 0 : 1;
      const ob = onlineOf(s, ctx, b) ? 0 : 1;
      return oa - ob || nameOf(s, a).localeCompare(nameOf(s, b));
    });
    presList.replaceChildren(
      ...(ids.length
        ? ids.map((u) => {
            const p = s.profiles.get(u);
            const pres = s.presence.get(u);
            const online = onlineOf(s, ctx, u);
            return h(
              "li",
              { className: "ct-row", testid: `friend-presence-${u}`, "data-online": String(online) },
              avatarOf(u, p?.nickname ?? u, p?.avatarUrl, online, `friend-presence-dot-${u}`),
              h(
                "div",
                { className: "ct-main" },
                h(
                  "span",
                  { className: "ct-top" },
                  h("strong", { testid: "friend-presence-name" }, nameOf(s, u)),
                  h("span", { className: `ct-online${online ? " on" : ""}` }, online ? "online" : "offline"),
                ),
                h("span", { className: "ct-statustext", testid: "friend-presence-status" }, pres?.statusText ?? ""),
              ),
            );
          })
        : [h("li", { className: "ct-empty" }, s.loaded ? "No friends yet." : "Loading…")]),
    );
  }

  // ---- layout
  const section = (id: string, title: string, ...body: Node[]) =>
    h("section", { className: "ct-section", "aria-labelledby": id }, h("h3", { id }, title), ...body);
  root.replaceChildren(
    h(
      "div",
      { className: "ct-view", testid: "profile-view" },
      h("h2", { className: "ct-title" }, "Me"),
      head,
      msg.error,
      msg.status,
      section("pf-h-status", "Status", statusForm),
      section("pf-h-profile", "Profile", form),
      section("pf-h-pres", "Friends now", presList),
    ),
  );

  /** Takes the broker's copy of my profile into the form unless it has unsaved edits. */
  function takeProfile() {
    const p = s.profiles.get(me);
    if (!p || p === saved) return;
    saved = p;
    if (!dirty) fillForm();
  }

  const detach = s.attach(
    (c) => {
      if (c === "profiles" || c === "loaded") {
        takeProfile();
        renderHead();
      }
      if (c === "presence" || c === "loaded") {
        renderHead();
        const mine = s.presence.get(me);
        if (mine && document.activeElement !== statusInput) statusInput.value = mine.statusText;
      }
      renderPresence();
      if (c === "loaded" && msg.status.textContent?.startsWith("Connecting")) msg.clear();
    },
    (e, what) => {
      msg.fail(e, what);
      // A background failure (a reload on reconnect, a pushed change) while this view is hidden goes to the page too.
      if (!root.checkVisibility()) ctx.showError(e);
    },
  );
  saved = s.profiles.get(me);
  renderHead();
  fillForm();
  renderPresence();

  const refresh = () => {
    if (client.state !== "online") {
      msg.ok("Connecting… your profile loads once online.");
      return;
    }
    s.load().catch((e) => msg.fail(e, "Could not load your profile"));
  };
  refresh();
  return {
    refresh,
    dispose() {
      detach();
      root.replaceChildren();
    },
  };
}
