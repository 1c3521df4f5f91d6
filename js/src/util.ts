// Small helpers the parts share.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function stopStream(stream: MediaStream | null | undefined): void {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

// An error that says why "auto" leaves WebRTC, for the `transport` message and the status line:
// its `reason` ("UDP blocked: WebRTC found no network path"), else its message. The part before
// the first ": " or "; " is the short form the status line shows; the title shows it all.
export interface FallbackError extends Error {
  reason?: string;
  code?: string; // the kernel's error code (answer_error), e.g. "NOT_CONNECTED"
}

export function fallbackError(message: string, reason: string): FallbackError {
  return Object.assign(new Error(message), { reason });
}

export function fallbackReason(err: unknown): string {
  const e = err as FallbackError | null | undefined;
  return e?.reason || `WebRTC failed: ${e?.message || err}`;
}

export function shortReason(reason: string): string {
  return reason.split(/: |; /)[0] ?? reason;
}

// The `code` of a thrown value, if it has one.
export function errorCode(err: unknown): string | undefined {
  return (err as FallbackError | null | undefined)?.code;
}
