/* test_sampler — greedy ties, top-k, top-p, min-p, temperature, seeds, helpers. */
#include "engine/engine.h"

#include <criterion/criterion.h>
#include <math.h>

static trit_sampler *mk(float temp, int top_k, float top_p, float min_p, uint64_t seed) {
    trit_sampler_params p = {
        .temp = temp, .top_k = top_k, .top_p = top_p, .min_p = min_p, .seed = seed};
    return trit_sampler_new(&p);
}

/* counts[id] over n draws */
static void draw(trit_sampler *s, const float *lg, int nv, int n, int *counts) {
    for (int i = 0; i < n; i++) {
        int32_t id = trit_sampler_sample(s, lg, nv);
        cr_assert(id >= 0 && id < nv);
        counts[id]++;
    }
}

Test(sampler, argmax_ties_lowest_id) {
    float lg[5] = {1, 3, 2, 3, 3};
    cr_assert_eq(trit_argmax(lg, 5), 1);
    trit_sampler *s = mk(0.0f, 40, 0.95f, 0.05f, 7);
    cr_assert_eq(trit_sampler_sample(s, lg, 5), 1);
    trit_sampler_free(s);
}

Test(sampler, top_k_helper_order) {
    float lg[6] = {0.5f, 2, 2, -1, 3, 2};
    int32_t ids[4];
    cr_assert_eq(trit_top_k(lg, 6, 4, ids), 4);
    cr_assert_eq(ids[0], 4);
    cr_assert_eq(ids[1], 1);
    cr_assert_eq(ids[2], 2);
    cr_assert_eq(ids[3], 5);
    int32_t all[6];
    cr_assert_eq(trit_top_k(lg, 6, 10, all), 6, "k > n returns n");
    cr_assert_eq(all[5], 3, "lowest logit last");
}

Test(sampler, logsumexp) {
    float lg[3] = {0, 0, 0};
    cr_assert_float_eq(trit_logsumexp(lg, 3), log(3.0), 1e-12);
    float big[2] = {1000, 1000};
    cr_assert_float_eq(trit_logsumexp(big, 2), 1000 + log(2.0), 1e-9);
}

Test(sampler, top_k_limits_candidates) {
    float lg[6] = {1.0f, 0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
    trit_sampler *s = mk(1.0f, 2, 1.0f, 0.0f, 1);
    int c[6] = {0};
    draw(s, lg, 6, 2000, c);
    cr_assert(c[0] > 0 && c[1] > 0, "both top-2 drawn");
    cr_assert_eq(c[2] + c[3] + c[4] + c[5], 0, "nothing outside top-2");
    trit_sampler_free(s);
}

Test(sampler, top_p_cuts_tail) {
    /* probabilities 0.5, 0.3, 0.2 */
    float lg[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    trit_sampler *s = mk(1.0f, 0, 0.6f, 0.0f, 3);
    int c[3] = {0};
    draw(s, lg, 3, 3000, c);
    cr_assert(c[0] > 0 && c[1] > 0);
    cr_assert_eq(c[2], 0, "0.5 + 0.3 >= 0.6: the third is cut");
    trit_sampler_free(s);
}

Test(sampler, min_p_cuts_unlikely) {
    float lg[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    trit_sampler *s = mk(1.0f, 0, 1.0f, 0.5f, 4);
    int c[3] = {0};
    draw(s, lg, 3, 3000, c);
    cr_assert(c[0] > 0 && c[1] > 0, "0.3 >= 0.5 * 0.5 is kept");
    cr_assert_eq(c[2], 0, "0.2 < 0.25 is cut");
    trit_sampler_free(s);
}

Test(sampler, temperature_shapes_distribution) {
    float lg[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    trit_sampler *cold = mk(0.05f, 0, 1.0f, 0.0f, 5), *hot = mk(5.0f, 0, 1.0f, 0.0f, 5),
                 *one = mk(1.0f, 0, 1.0f, 0.0f, 5);
    int cc[3] = {0}, ch[3] = {0}, c1[3] = {0};
    draw(cold, lg, 3, 3000, cc);
    draw(hot, lg, 3, 3000, ch);
    draw(one, lg, 3, 6000, c1);
    cr_assert(cc[0] > 2950, "cold is nearly greedy (%d)", cc[0]);
    cr_assert(ch[2] > 800, "hot is nearly uniform (%d)", ch[2]);
    /* temperature 1 follows the softmax: id 0 about half the time */
    cr_assert(c1[0] > 2700 && c1[0] < 3300, "p(0) = 0.5 expected, got %d/6000", c1[0]);
    trit_sampler_free(cold);
    trit_sampler_free(hot);
    trit_sampler_free(one);
}

Test(sampler, seeded_determinism) {
    float lg[50];
    for (int i = 0; i < 50; i++) lg[i] = sinf((float)i);
    trit_sampler *a = mk(1.0f, 0, 1.0f, 0.0f, 123), *b = mk(1.0f, 0, 1.0f, 0.0f, 123),
                 *c = mk(1.0f, 0, 1.0f, 0.0f, 124);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        int32_t x = trit_sampler_sample(a, lg, 50), y = trit_sampler_sample(b, lg, 50),
                z = trit_sampler_sample(c, lg, 50);
        same &= x == y;
        differ += x != z;
    }
    cr_assert(same, "same seed, same tokens");
    cr_assert(differ > 10, "another seed, other tokens (%d differ)", differ);
    trit_sampler_free(a);
    trit_sampler_free(b);
    trit_sampler_free(c);
}
