/* flowmatch.c — diffusers' FlowMatchEulerDiscreteScheduler as the Qwen-Image
 * pipelines drive it (evalhost/flowmatch.h); its config file is read in
 * native_config.c. */
#include <math.h>
#include <stddef.h>

#include "evalhost/error.h"
#include "evalhost/flowmatch.h"

double eh_flowmatch_mu(const eh_flowmatch_config *c, int image_seq_len)
{
    double m = (c->max_shift - c->base_shift) / (double)(c->max_image_seq_len - c->base_image_seq_len);
    double b = c->base_shift - m * c->base_image_seq_len;
    return image_seq_len * m + b;
}

/* Every float below is one numpy-2 float32 operation of diffusers'
 * set_timesteps (a Python float meeting a float32 array is rounded to
 * float32 first), so the schedule is bit-equal to it. */
eh_status eh_flowmatch_schedule(const eh_flowmatch_config *c, int steps, int image_seq_len, float *sigmas,
                                float *timesteps, eh_error *err)
{
    if (steps < 1)
        return eh_fail(err, EH_EINVAL, "scheduler: %d steps (at least 1)", steps);
    /* np.linspace(1.0, 1 / steps, steps) in float64, then .astype(float32) */
    double step = steps > 1 ? (1.0 / steps - 1.0) / (steps - 1) : 0;
    for (int i = 0; i < steps; i++)
        sigmas[i] = (float)(i == steps - 1 ? 1.0 / steps : i * step + 1.0);
    if (c->use_dynamic_shifting) {
        double mu = eh_flowmatch_mu(c, image_seq_len);
        float e = (float)(c->exponential ? exp(mu) : mu);
        for (int i = 0; i < steps; i++) {
            float t = sigmas[i];
            float d = 1.0f / t - 1.0f;   /* ** 1.0 (the time shift's sigma) is exact */
            sigmas[i] = e / (e + d);
        }
    } else {
        float sh = (float)c->shift, sh1 = (float)(c->shift - 1.0);
        for (int i = 0; i < steps; i++)
            sigmas[i] = sh * sigmas[i] / (1.0f + sh1 * sigmas[i]);
    }
    if (c->shift_terminal > 0) {
        float scale = (1.0f - sigmas[steps - 1]) / (float)(1.0 - c->shift_terminal);
        /* one step leaves sigma 1: diffusers divides 0 by 0 and edits with NaN */
        if (!(scale > 0))
            return eh_fail(err, EH_EINVAL,
                           "scheduler: %d step(s) with shift_terminal %g: the terminal stretch "
                           "divides by zero (diffusers edits with NaN); use 2 or more steps or shift_terminal: false",
                           steps, c->shift_terminal);
        for (int i = 0; i < steps; i++)
            sigmas[i] = 1.0f - (1.0f - sigmas[i]) / scale;
    }
    for (int i = 0; i < steps; i++)
        timesteps[i] = sigmas[i] * (float)c->num_train_timesteps;
    sigmas[steps] = 0.0f;
    return EH_OK;
}

void eh_flowmatch_step(float *x, const float *v, size_t n, float sigma, float sigma_next)
{
    float dt = sigma_next - sigma;
    for (size_t i = 0; i < n; i++) {
        float dv = dt * v[i];   /* two roundings, as torch's mul then add */
        x[i] = x[i] + dv;
    }
}
