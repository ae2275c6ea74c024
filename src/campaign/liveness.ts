/**
 * Whether a campaign recorded as running still has its owner process. A campaign whose owner died
 * (kill -9, power cut) stays `running` in the manifest until the next resume claims it; readers
 * show it as interrupted, with the dead pid. An owner on another host cannot be checked from here.
 */
import { hostname } from 'node:os';
import type { CampaignRow, CampaignStatus } from '../manifest/manifest.js';
import { pidAlive } from '../util/process.js';

export interface Liveness {
  /** The status to show: `interrupted` for a running campaign whose owner is gone. */
  status: CampaignStatus;
  /** The owner's pid when it is known to be gone, else null. */
  deadOwnerPid: number | null;
}

export interface LivenessProbe {
  host: string;
  alive(pid: number): boolean;
}

export const systemProbe: LivenessProbe = { host: hostname(), alive: pidAlive };

export function liveness(c: Pick<CampaignRow, 'status' | 'ownerPid' | 'ownerHost'>, probe: LivenessProbe = systemProbe): Liveness {
  if (c.status !== 'running' || c.ownerPid === null) return { status: c.status, deadOwnerPid: null };
  if (c.ownerHost !== null && c.ownerHost !== probe.host) return { status: c.status, deadOwnerPid: null };
  if (probe.alive(c.ownerPid)) return { status: c.status, deadOwnerPid: null };
  return { status: 'interrupted', deadOwnerPid: c.ownerPid };
}
