// Test and debugging hook: the live controllers of this page, on globalThis.__decartNB, only when
// globalThis.__decartNBDebug is true before the module loads (the browser tests set it with an
// init script). `strict: true` makes a refused status transition throw instead of logging.

export interface DebugRegistry {
  controllers: Set<object>;
  strict?: boolean;
}

interface DebugGlobals {
  __decartNBDebug?: unknown;
  __decartNB?: DebugRegistry;
}

function debugRegistry(): DebugRegistry | null {
  const g = globalThis as DebugGlobals;
  if (g.__decartNBDebug !== true) return null;
  return (g.__decartNB ??= { controllers: new Set() });
}

export const registry: DebugRegistry | null = debugRegistry();
