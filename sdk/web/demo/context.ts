/**
 * The contract between the chat page (app.ts) and its secondary views
 * (contacts.ts, profile.ts): what a view may use of the page.
 *
 * Invariants: `client` is the page's one MissiveClient for the signed-in user
 * `me` (a view never creates, starts or stops it); a view reports every broker
 * error through `showError` (or inline) and never swallows one;
 * `openConversation` switches the page to a conversation by id (for a friend:
 * `directConvId(me, friend)`); `isOnline` reads the page's presence map
 * (false when unknown).
 */
import type { MissiveClient } from "../src/index.ts";

export interface PageContext {
  client: MissiveClient;
  me: string;
  openConversation(convId: string): void;
  showError(e: unknown): void;
  isOnline(userId: string): boolean;
}

/** What a mounted view gives back: `refresh` re-reads from the broker, `dispose` removes listeners and DOM. */
export interface MountedView {
  refresh(): void;
  dispose(): void;
}
