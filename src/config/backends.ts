/**
 * The backends lem knows, by name: the vocabulary that config, runtime and results share. It sits on
 * the ground floor (config) so that nothing below results/ has to import the result schema for it.
 */
import { z } from 'zod';

export const BACKENDS = ['pytorch', 'vllm', 'tensorrt', 'calibration'] as const;
export const BackendName = z.enum(BACKENDS);
export type BackendName = z.infer<typeof BackendName>;
