/**
 * The profile and presence view (placeholder until the SDK's profile methods
 * land): the signature app.ts wires. Builds its DOM inside `root` only.
 */
import type { PageContext } from "./context.ts";

export function mountProfile(root: HTMLElement, ctx: PageContext): { refresh(): void; dispose(): void } {
  void ctx;
  const p = document.createElement("p");
  p.className = "ct-empty";
  p.textContent = "Your profile is loading…";
  root.replaceChildren(p);
  return { refresh() {}, dispose: () => root.replaceChildren() };
}
