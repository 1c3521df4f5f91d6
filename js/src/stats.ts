// What the page measures for session.stats: the `page_stats` message's figures, from two samples
// of counters (rates are differences between samples), and WebRTC's round trip.
// A sample of counters at time `t` (performance.now() ms); a counter may be missing (undefined).
export type Sample<K extends string> = { t: number } & Record<K, number | null | undefined>;

// Per second between two samples; null when either lacks the counter or no time passed.
export function perSecond<K extends string>(sample: Sample<K>, last: Sample<K>, key: K): number | null {
  const [now, then] = [sample[key], last[key]];
  return typeof now === "number" && typeof then === "number" && sample.t > last.t ? ((now - then) * 1000) / (sample.t - last.t) : null;
}

// The same for a counter known to be there (the codec link's own counts): no guard on the time.
export function countPerSecond<K extends string>(sample: Sample<K>, last: Sample<K>, key: K): number {
  return (((sample[key] ?? 0) - (last[key] ?? 0)) * 1000) / (sample.t - last.t);
}

export function kbps(bytesPerSecond: number | null): number | null {
  return bytesPerSecond === null ? null : (bytesPerSecond * 8) / 1000;
}

// The statistics entries this page reads (RTCStatsReport's values, loosely: each a plain object).
export interface StatsEntry {
  id?: string;
  type: string;
  kind?: string;
  state?: string;
  nominated?: boolean;
  selectedCandidatePairId?: string;
  currentRoundTripTime?: number;
  framesSent?: number;
  framesReceived?: number;
  framesDecoded?: number;
  framesDropped?: number;
  freezeCount?: number;
  frameWidth?: number;
  frameHeight?: number;
  bytesSent?: number;
  bytesReceived?: number;
}

export interface StatsReport {
  forEach(callback: (entry: StatsEntry) => void): void;
}

// The network round trip (ms) of the connection's selected candidate pair, from its STUN
// checks; null until one was measured.
export function roundTripMs(report: StatsReport): number | null {
  let pairId: string | null = null;
  report.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  let rtt: number | null = null;
  report.forEach((r) => {
    if (r.type !== "candidate-pair" || typeof r.currentRoundTripTime !== "number") return;
    if (pairId ? r.id === pairId : r.nominated && r.state === "succeeded") rtt = r.currentRoundTripTime * 1000;
  });
  return rtt;
}
