/**
 * The contacts view (placeholder until the SDK's relation methods land): the
 * signature app.ts wires. Builds its DOM inside `root` only.
 */
import type { PageContext } from "./context.ts";

export function mountContacts(root: HTMLElement, ctx: PageContext): { refresh(): void; dispose(): void } {
  void ctx;
  const p = document.createElement("p");
  p.className = "ct-empty";
  p.textContent = "Contacts are loading…";
  root.replaceChildren(p);
  return { refresh() {}, dispose: () => root.replaceChildren() };
}
