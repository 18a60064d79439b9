/* flowmatch.h — diffusers' FlowMatchEulerDiscreteScheduler as the Qwen-Image
 * pipelines drive it (issue 14), in plain C: the schedule of sigmas and
 * timesteps for a step count and an image sequence length (dynamic shift),
 * and the Euler step.  Arithmetic follows diffusers' float32 (numpy 2 and
 * torch) rounding, so schedules and steps are bit-equal to it.
 *
 *   eh_flowmatch_config c;
 *   eh_flowmatch_config_load("snap/scheduler/scheduler_config.json", &c, &err);
 *   float sig[51], ts[50];
 *   eh_flowmatch_schedule(&c, 50, image_seq_len, sig, ts, &err);
 *   for (i..50) { model(..., ts[i] / 1000); eh_flowmatch_step(x, v, n, sig[i], sig[i + 1]); }
 * Defined in host/models/flowmatch.c (the config loader in native_config.c). */
#ifndef EVALHOST_FLOWMATCH_H
#define EVALHOST_FLOWMATCH_H

#include <stddef.h>

#include "evalhost/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eh_flowmatch_config {
    int num_train_timesteps;
    double shift, base_shift, max_shift, shift_terminal;   /* shift_terminal 0: none */
    int base_image_seq_len, max_image_seq_len;
    int use_dynamic_shifting;
    int exponential;                                        /* time_shift_type: 1 exponential, 0 linear */
} eh_flowmatch_config;

/* eh_flowmatch_config_load (evalhost/native_config.h) reads
 * scheduler/scheduler_config.json into this. */

/* The pipeline's mu for a packed image sequence length (calculate_shift). */
double eh_flowmatch_mu(const eh_flowmatch_config *cfg, int image_seq_len);

/* QwenImageEditPipeline's schedule: sigmas linspace(1, 1/steps, steps),
 * shifted by mu (dynamic) or by shift, stretched to shift_terminal;
 * sigmas[steps + 1] (the last 0), timesteps[steps] (sigma * train steps).
 * EH_EINVAL for steps < 1. */
eh_status eh_flowmatch_schedule(const eh_flowmatch_config *cfg, int steps, int image_seq_len, float *sigmas,
                                float *timesteps, eh_error *err);

/* One Euler step in place: x += (sigma_next - sigma) * v, in float32. */
void eh_flowmatch_step(float *x, const float *v, size_t n, float sigma, float sigma_next);

#ifdef __cplusplus
}
#endif

#endif
