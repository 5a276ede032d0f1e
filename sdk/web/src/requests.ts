/**
 * Typed request methods of the protocol's stateless requests: accounts,
 * profiles, presence (spec section 12), friends and the blacklist (13), and
 * groups (14). `MissiveClient` extends this class and adds the requests that
 * touch its local state (send, sync, pull, history, read state, conversation
 * flags, settings, the message lifecycle).
 *
 * Every method sends one `Request` on the current session and resolves with
 * the unwrapped result message of spec 8.1's table, or `void` where the
 * result is `ok`.
 *
 * Invariants:
 * - a method resolves only with the result case the spec names for its
 *   request; any other case (or none) rejects with a `MissiveError` (code 0)
 *   naming both, never with `undefined`;
 * - a failed request rejects with the broker's `MissiveError` (code, message,
 *   retryable); without a session it rejects at once (code 0, retryable);
 * - nothing here holds state: answers are not re-emitted as events (pushes
 *   to the user's other devices and to the other users are, by the client).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  AccountsExistResult,
  AccountsExistSchema,
  AddFriendResult,
  AddFriendSchema,
  AddToBlacklistSchema,
  Blacklist,
  CheckRelationsSchema,
  DeleteFriendSchema,
  FriendList,
  FriendRequestList,
  GetPresenceSchema,
  GetProfilesSchema,
  ImportFriendshipSchema,
  ImportUserSchema,
  ListBlacklistSchema,
  ListFriendRequestsSchema,
  ListFriendsSchema,
  ListPresenceSubscriptionsSchema,
  PresenceList,
  Profile,
  Profiles,
  Relation,
  Relations,
  RemoveFromBlacklistSchema,
  RespondFriendRequestSchema,
  RevokeTokensSchema,
  SearchFriendsSchema,
  SetAccountDisabledSchema,
  SetPresenceStatusSchema,
  SetProfileSchema,
  UnsubscribePresenceSchema,
  UpdateFriendSchema,
} from "./gen/user_pb.ts";
import type {
  CreateGroupSchema,
  DismissGroupSchema,
  GetGroupReceiptSchema,
  GetGroupsSchema,
  GroupApplications,
  GroupInfo,
  GroupMember,
  GroupMembers,
  GroupReceipt,
  Groups,
  InviteToGroupSchema,
  JoinedGroups,
  JoinGroupResult,
  JoinGroupSchema,
  KickFromGroupSchema,
  ListGroupApplicationsSchema,
  ListGroupMembersSchema,
  ListJoinedGroupsSchema,
  MuteGroupAllSchema,
  MuteGroupMemberSchema,
  QuitGroupSchema,
  RespondGroupApplicationSchema,
  SetGroupNicknameSchema,
  SetGroupRoleSchema,
  TransferGroupSchema,
  UpdateGroupSchema,
} from "./gen/group_pb.ts";
import { MissiveError, type RequestOp, type ResponseResult } from "./connection.ts";

/** A `Response.result` case name (`"ok"`, `"profile"`, `"group"`, ...). */
export type ResultCase = NonNullable<ResponseResult["case"]>;
/** The message type carried by result case `K`. */
export type ResultOf<K extends ResultCase> = Extract<ResponseResult, { case: K }>["value"];

/** The error for a success answer whose result case is not the one the request expects. */
export function unexpectedResult(op: string | undefined, got: string | undefined, want: string): MissiveError {
  return new MissiveError(0, `${op ?? "request"}: unexpected result ${got ?? "(none)"} (expected ${want})`, false);
}

export abstract class MissiveRequests {
  /** Sends one request on the current session; rejects with a `MissiveError`. */
  protected abstract request(op: RequestOp): Promise<ResponseResult>;

  /** Sends `op` and unwraps result case `want`; any other case rejects. */
  protected async call<K extends ResultCase>(op: RequestOp, want: K): Promise<ResultOf<K>> {
    const r = await this.request(op);
    if (r.case !== want) throw unexpectedResult(op?.case, r.case, want);
    return r.value as ResultOf<K>;
  }

  // ------------------------------------------------------------ accounts (12.1)

  /** Admin: registers an account (optionally with a profile). Errors: 2003, 3000, 4001 ACCOUNT_EXISTS. */
  importUser(req: MessageInitShape<typeof ImportUserSchema>): Promise<Profile> {
    return this.call({ case: "importUser", value: req }, "profile");
  }

  /** Admin: disables (kicks every session) or re-enables an account. Errors: 2003, 3000, 4000 USER_NOT_FOUND. */
  async setAccountDisabled(req: MessageInitShape<typeof SetAccountDisabledSchema>): Promise<void> {
    await this.call({ case: "setAccountDisabled", value: req }, "ok");
  }

  /** Admin: revokes every token of the user issued until now; live sessions close. Errors: 2003, 3000, 4000. */
  async revokeTokens(req: MessageInitShape<typeof RevokeTokensSchema>): Promise<void> {
    await this.call({ case: "revokeTokens", value: req }, "ok");
  }

  /** Which of 1..=100 users are registered (and disabled), in request order. Errors: 3000. */
  accountsExist(req: MessageInitShape<typeof AccountsExistSchema>): Promise<AccountsExistResult> {
    return this.call({ case: "accountsExist", value: req }, "accounts");
  }

  // ------------------------------------------------------------ profiles (12.2)

  /** Changes the caller's profile (unset fields kept, `ex` merged) [PR-1]; resolves with the new one. Errors: 3000. */
  setProfile(req: MessageInitShape<typeof SetProfileSchema>): Promise<Profile> {
    return this.call({ case: "setProfile", value: req }, "profile");
  }

  /** Profiles of 1..=100 users, unregistered ones left out [PR-4]. Errors: 3000. */
  getProfiles(req: MessageInitShape<typeof GetProfilesSchema>): Promise<Profiles> {
    return this.call({ case: "getProfiles", value: req }, "profiles");
  }

  // ------------------------------------------------------------ presence (12.4)

  /** Presence of 1..=100 users, in request order [PS-1]. Errors: 3000. */
  getPresence(req: MessageInitShape<typeof GetPresenceSchema>): Promise<PresenceList> {
    return this.call({ case: "getPresence", value: req }, "presence");
  }

  /** Stops `presence` pushes for these users [PS-3]. Errors: 3000. */
  async unsubscribePresence(req: MessageInitShape<typeof UnsubscribePresenceSchema>): Promise<void> {
    await this.call({ case: "unsubscribePresence", value: req }, "ok");
  }

  /** Current presence of every user the caller subscribes to, ascending by id [PS-3]. */
  listPresenceSubscriptions(req: MessageInitShape<typeof ListPresenceSubscriptionsSchema> = {}): Promise<PresenceList> {
    return this.call({ case: "listPresenceSubscriptions", value: req }, "presence");
  }

  /** Sets (or with "" clears) the caller's custom status text [PS-5]. Errors: 3000. */
  async setPresenceStatus(req: MessageInitShape<typeof SetPresenceStatusSchema>): Promise<void> {
    await this.call({ case: "setPresenceStatus", value: req }, "ok");
  }

  // ------------------------------------------------------------ friends (13.1, 13.2)

  /**
   * Adds a friend: `ADDED` at once or `REQUESTED` per the target's verification [FR-1], [FR-2].
   * Errors: 3000, 4000, 4002, 4004, 4005, 4007, 4008 BLOCKED_BY_USER, 4009, 4012.
   */
  addFriend(req: MessageInitShape<typeof AddFriendSchema>): Promise<AddFriendResult> {
    return this.call({ case: "addFriend", value: req }, "addFriend");
  }

  /** Accepts or rejects the pending request from `userId` [FR-3]. Errors: 4004, 4005, 4006 NO_PENDING_REQUEST, 4012. */
  respondFriendRequest(req: MessageInitShape<typeof RespondFriendRequestSchema>): Promise<Relation> {
    return this.call({ case: "respondFriendRequest", value: req }, "relation");
  }

  /** Removes a friend (from both lists with `bothSides`) [RL-3]. Errors: 4000, 4003 NOT_FRIENDS, 4012. */
  deleteFriend(req: MessageInitShape<typeof DeleteFriendSchema>): Promise<Relation> {
    return this.call({ case: "deleteFriend", value: req }, "relation");
  }

  /** Changes the caller's remark / custom fields for a friend [RL-4]. Errors: 3000, 4003, 4012. */
  updateFriend(req: MessageInitShape<typeof UpdateFriendSchema>): Promise<Relation> {
    return this.call({ case: "updateFriend", value: req }, "relation");
  }

  /** One page of the caller's friends in user-id order [RL-1], [RL-2]. Errors: 3000 (bad cursor). */
  listFriends(req: MessageInitShape<typeof ListFriendsSchema> = {}): Promise<FriendList> {
    return this.call({ case: "listFriends", value: req }, "friends");
  }

  /** One page of received (or `outgoing`) friend requests [FR-4]. Errors: 3000. */
  listFriendRequests(req: MessageInitShape<typeof ListFriendRequestsSchema> = {}): Promise<FriendRequestList> {
    return this.call({ case: "listFriendRequests", value: req }, "friendRequests");
  }

  /** The caller's relation with 1..=100 users, in request order [RL-5]. Errors: 3000. */
  checkRelations(req: MessageInitShape<typeof CheckRelationsSchema>): Promise<Relations> {
    return this.call({ case: "checkRelations", value: req }, "relations");
  }

  /** Friends whose id, nickname or remark contains `query` (with profiles) [RL-6]. Errors: 3000. */
  searchFriends(req: MessageInitShape<typeof SearchFriendsSchema>): Promise<FriendList> {
    return this.call({ case: "searchFriends", value: req }, "friends");
  }

  /** Admin: makes two users friends both ways without verification [RL-7]. Errors: 2003, 4000, 4004, 4005. */
  async importFriendship(req: MessageInitShape<typeof ImportFriendshipSchema>): Promise<void> {
    await this.call({ case: "importFriendship", value: req }, "ok");
  }

  // ------------------------------------------------------------ blacklist (13.3)

  /** Blacklists a user: their 1:1 sends and friend requests get 4008 [B-1], [B-2]. Errors: 3000, 4010, 4012. */
  addToBlacklist(req: MessageInitShape<typeof AddToBlacklistSchema>): Promise<Relation> {
    return this.call({ case: "addToBlacklist", value: req }, "relation");
  }

  /** Removes a user from the blacklist (idempotent) [B-3]. Errors: 3000, 4012. */
  removeFromBlacklist(req: MessageInitShape<typeof RemoveFromBlacklistSchema>): Promise<Relation> {
    return this.call({ case: "removeFromBlacklist", value: req }, "relation");
  }

  /** One page of the blacklist in user-id order [B-3]. Errors: 3000. */
  listBlacklist(req: MessageInitShape<typeof ListBlacklistSchema> = {}): Promise<Blacklist> {
    return this.call({ case: "listBlacklist", value: req }, "blacklist");
  }

  // ------------------------------------------------------------ groups (14)

  /**
   * Creates a group owned by the caller, `memberIds` joining at once [GR-1]; its
   * conversation is `groupConvId(groupId)`. Errors: 3000, 4000, 4008, 4101, 4105, 4106.
   */
  createGroup(req: MessageInitShape<typeof CreateGroupSchema>): Promise<GroupInfo> {
    return this.call({ case: "createGroup", value: req }, "group");
  }

  /** Public info of 1..=100 groups, unknown ids left out [GR-2]. Errors: 3000. */
  getGroups(req: MessageInitShape<typeof GetGroupsSchema>): Promise<Groups> {
    return this.call({ case: "getGroups", value: req }, "groups");
  }

  /** Changes a group's info or settings [GR-3]. Errors: 3000, 4100, 4102, 4104. */
  updateGroup(req: MessageInitShape<typeof UpdateGroupSchema>): Promise<GroupInfo> {
    return this.call({ case: "updateGroup", value: req }, "group");
  }

  /** Owner: dismisses the group [GR-4]. Errors: 4100, 4102, 4104. */
  async dismissGroup(req: MessageInitShape<typeof DismissGroupSchema>): Promise<void> {
    await this.call({ case: "dismissGroup", value: req }, "ok");
  }

  /** Joins (`JOINED`) or applies (`APPLIED`) per the join mode or a pending invitation [GR-6]. Errors: 4100, 4103, 4105, 4106, 4107. */
  joinGroup(req: MessageInitShape<typeof JoinGroupSchema>): Promise<JoinGroupResult> {
    return this.call({ case: "joinGroup", value: req }, "joinGroup");
  }

  /**
   * Owner/admin: accepts or rejects a pending application [GR-9]; with `userId` = the
   * caller: accepts (as `joinGroup`) or declines (`accept: false`) the caller's own pending
   * invitation [GR-9a]. Errors: 4100, 4102, 4103, 4104, 4105, 4106, 4107, 4108.
   */
  async respondGroupApplication(req: MessageInitShape<typeof RespondGroupApplicationSchema>): Promise<void> {
    await this.call({ case: "respondGroupApplication", value: req }, "ok");
  }

  /** A group's received applications (owner/admins), or the caller's own (`outgoing`) [GR-27]. Errors: 3000, 4100, 4102, 4104. */
  listGroupApplications(req: MessageInitShape<typeof ListGroupApplicationsSchema>): Promise<GroupApplications> {
    return this.call({ case: "listGroupApplications", value: req }, "groupApplications");
  }

  /**
   * Invites users [GR-10]. Resolves with `undefined` when they joined at once
   * (result `ok`), or with the group's info when the group needs the invitees'
   * consent (result `group`: each got a pending invitation to accept with `joinGroup`).
   * Errors: 3000, 4000, 4008, 4100, 4102, 4103, 4104, 4105, 4106, 4107.
   */
  async inviteToGroup(req: MessageInitShape<typeof InviteToGroupSchema>): Promise<GroupInfo | undefined> {
    const r = await this.request({ case: "inviteToGroup", value: req });
    if (r.case === "ok") return undefined;
    if (r.case === "group") return r.value;
    throw unexpectedResult("inviteToGroup", r.case, "ok or group");
  }

  /** Removes members, all or nothing [GR-11], [GR-12]. Errors: 3000, 4100, 4102, 4104, 4012. */
  async kickFromGroup(req: MessageInitShape<typeof KickFromGroupSchema>): Promise<void> {
    await this.call({ case: "kickFromGroup", value: req }, "ok");
  }

  /** Leaves a group; the owner must transfer or dismiss first [GR-13]. Errors: 4100, 4102, 4109 OWNER_CANNOT_QUIT. */
  async quitGroup(req: MessageInitShape<typeof QuitGroupSchema>): Promise<void> {
    await this.call({ case: "quitGroup", value: req }, "ok");
  }

  /** Owner: hands the group to a member (and leaves with `quit`) [GR-25]. Errors: 4100, 4102, 4104, 4012. */
  transferGroup(req: MessageInitShape<typeof TransferGroupSchema>): Promise<GroupInfo> {
    return this.call({ case: "transferGroup", value: req }, "group");
  }

  /** Owner: makes a member `ADMIN` or `MEMBER` [GR-14]. Errors: 3000, 4100, 4102, 4104, 4012. */
  setGroupRole(req: MessageInitShape<typeof SetGroupRoleSchema>): Promise<GroupMember> {
    return this.call({ case: "setGroupRole", value: req }, "groupMember");
  }

  /** Sets a member's group nickname (`userId` "" = the caller) [GR-15]. Errors: 3000, 4100, 4102, 4104. */
  setGroupNickname(req: MessageInitShape<typeof SetGroupNicknameSchema>): Promise<GroupMember> {
    return this.call({ case: "setGroupNickname", value: req }, "groupMember");
  }

  /** Owner/admin: mutes a member for `durationSecs` (0 unmutes); their sends get 4110 [GR-16]. Errors: 4100, 4102, 4104, 4012. */
  muteGroupMember(req: MessageInitShape<typeof MuteGroupMemberSchema>): Promise<GroupMember> {
    return this.call({ case: "muteGroupMember", value: req }, "groupMember");
  }

  /** Owner/admin: mutes the whole group; ordinary members' sends get 4111 [GR-16]. Errors: 4100, 4102, 4104. */
  muteGroupAll(req: MessageInitShape<typeof MuteGroupAllSchema>): Promise<GroupInfo> {
    return this.call({ case: "muteGroupAll", value: req }, "group");
  }

  /** One page of a group's members, ascending by user id [GR-28]. Errors: 3000, 4100, 4102. */
  listGroupMembers(req: MessageInitShape<typeof ListGroupMembersSchema>): Promise<GroupMembers> {
    return this.call({ case: "listGroupMembers", value: req }, "groupMembers");
  }

  /** One page of the caller's groups, with their total [GR-26]. Errors: 3000. */
  listJoinedGroups(req: MessageInitShape<typeof ListJoinedGroupsSchema> = {}): Promise<JoinedGroups> {
    return this.call({ case: "listJoinedGroups", value: req }, "joinedGroups");
  }

  /** Who read the group message at `seq` [GR-23]. Errors: 3000, 4100, 4102, 4112. */
  getGroupReceipt(req: MessageInitShape<typeof GetGroupReceiptSchema>): Promise<GroupReceipt> {
    return this.call({ case: "getGroupReceipt", value: req }, "groupReceipt");
  }
}
