/* test_config.c — YAML 1.2 core schema, aliases, limits, --set and the
 * top-level key check. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "evalhost/config.h"

static eh_node *parse(const char *text, eh_error *err)
{
    eh_error_clear(err);
    return eh_yaml_parse(text, strlen(text), "t.yaml", NULL, err);
}

static void test_core_schema(void)
{
    eh_error err;
    eh_node *n = parse("a: no\nb: 0x1F\nc: 1e3\nd: 0o17\ne: ~\nf: true\ng: '12'\nh: -3\ni: .inf\nj: 1.5\nk: yes\n"
                       "l: 12abc\nm: !!str 5\nn: !!float 2\n",
                       &err);
    CHECK(n != NULL);
    if (!n)
        return;
    CHECK_EQ_INT(eh_node_get(n, "a")->type, EH_NODE_STRING);
    CHECK_EQ_STR(eh_node_str(n, "a", NULL), "no");
    CHECK_EQ_INT(eh_node_get(n, "b")->type, EH_NODE_INT);
    CHECK_EQ_INT(eh_node_int(n, "b", 0), 31);
    CHECK_EQ_INT(eh_node_get(n, "c")->type, EH_NODE_FLOAT);
    CHECK(eh_node_num(n, "c", 0) == 1000.0);
    CHECK_EQ_INT(eh_node_int(n, "d", 0), 15);
    CHECK_EQ_INT(eh_node_get(n, "e")->type, EH_NODE_NULL);
    CHECK_EQ_INT(eh_node_get(n, "f")->type, EH_NODE_BOOL);
    CHECK_EQ_INT(eh_node_get(n, "g")->type, EH_NODE_STRING);
    CHECK_EQ_INT(eh_node_int(n, "h", 0), -3);
    CHECK(eh_node_num(n, "i", 0) > 1e308);
    CHECK(eh_node_num(n, "j", 0) == 1.5);
    CHECK_EQ_STR(eh_node_str(n, "k", NULL), "yes");
    CHECK_EQ_STR(eh_node_str(n, "l", NULL), "12abc");
    CHECK_EQ_STR(eh_node_str(n, "m", NULL), "5");
    CHECK_EQ_INT(eh_node_get(n, "n")->type, EH_NODE_FLOAT);
    eh_node_free(n);
}

static void test_structure_and_aliases(void)
{
    eh_error err;
    eh_node *n = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [物理, 环境]\ncopy: *b\n", &err);
    CHECK(n != NULL);
    if (!n)
        return;
    CHECK_EQ_INT(eh_node_int(eh_node_get(n, "use"), "x", 0), 1);
    CHECK_EQ_INT(eh_node_int(eh_node_get(n, "use"), "y", 0), 3);
    CHECK_EQ_INT(eh_node_int(eh_node_get(n, "copy"), "y", 0), 2);
    const eh_node *list = eh_node_get(n, "list");
    CHECK(list && list->type == EH_NODE_SEQ && list->u.list.count == 2);
    CHECK_EQ_STR(list->u.list.items[0]->u.str.data, "物理");
    CHECK_EQ_INT(eh_node_int(eh_node_at(n, "use"), "x", 0), 1);
    CHECK(eh_node_at(n, "use.x") != NULL);
    eh_node_free(n);
}

static void test_errors(void)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        { "a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first at line 1)" },
        { "a: [1, 2\n", "t.yaml:" },
        { "a: !!python/object:os.system ls\n", "unsupported tag" },
        { "a: *nope\n", "unknown alias '*nope'" },
        { "a: !!int abc\n", "does not match its tag" },
        { "a: 1\n---\nb: 2\n", "more than one YAML document" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eh_error err;
        CHECK(parse(cases[i].yaml, &err) == NULL);
        CHECK_CONTAINS(err.msg, cases[i].want);
    }
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 8);
    size_t k = 0;
    for (int i = 0; i < depth; i++)
        s[k++] = '[';
    s[k++] = '1';
    for (int i = 0; i < depth; i++)
        s[k++] = ']';
    s[k] = '\0';
    return s;
}

static void test_limits(void)
{
    eh_error err;
    eh_config_limits lim = eh_config_default_limits();
    lim.max_depth = 10;
    /* depth counts the scalar too: 9 brackets + the scalar = 10 levels */
    char *ok = nested(9), *over = nested(10);
    eh_node *n = eh_yaml_parse(ok, strlen(ok), "d.yaml", &lim, &err);
    CHECK(n != NULL);
    eh_node_free(n);
    eh_error_clear(&err);
    CHECK(eh_yaml_parse(over, strlen(over), "d.yaml", &lim, &err) == NULL);
    CHECK_CONTAINS(err.msg, "limits.max_yaml_depth (10)");
    free(ok);
    free(over);

    /* billion laughs: each level multiplies the expansion */
    const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                         "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    lim = eh_config_default_limits();
    lim.max_nodes = 100000;
    eh_error_clear(&err);
    CHECK(eh_yaml_parse(laughs, strlen(laughs), "l.yaml", &lim, &err) == NULL);
    CHECK_CONTAINS(err.msg, "limits.max_yaml_nodes (100000");
    /* at the limit it parses: a (11 nodes) + b (1 + 10*11) */
    const char *small = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: [*a, *a]\n";
    lim.max_nodes = 11 + 1 + 2 * 11 + 1;   /* + the root map */
    eh_error_clear(&err);
    n = eh_yaml_parse(small, strlen(small), "s.yaml", &lim, &err);
    CHECK(n != NULL);
    eh_node_free(n);
    lim.max_nodes -= 1;
    eh_error_clear(&err);
    CHECK(eh_yaml_parse(small, strlen(small), "s.yaml", &lim, &err) == NULL);
}

static void test_validate_and_set(void)
{
    eh_error err;
    /* keys are lua/evalhost/schema.lua's business (tests/e2e/test_config_schema.py);
     * C checks the shape only */
    eh_node *n = parse("benchmark: {data_path: x}\njudeg: {name: metrics}\n", &err);
    CHECK(n != NULL);
    CHECK(eh_config_validate(n, "c.yaml", &err) == EH_OK);
    CHECK_EQ_INT(eh_node_get(n, "judeg")->line, 2);   /* the key's place, for the schema's messages */
    CHECK_EQ_INT(eh_node_get(n, "judeg")->col, 1);
    eh_node_free(n);
    n = parse("- a\n- b\n", &err);
    CHECK(n != NULL);
    CHECK(eh_config_validate(n, "c.yaml", &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "c.yaml: a config must be a mapping of sections");
    eh_node_free(n);

    n = eh_node_new(EH_NODE_MAP);
    CHECK(eh_config_set(n, "run.out=outputs/x", &err) == EH_OK);
    CHECK_EQ_STR(eh_node_str(eh_node_get(n, "run"), "out", NULL), "outputs/x");
    CHECK(eh_config_set(n, "limits.max_pixels=1e6", &err) == EH_OK);
    CHECK_EQ_INT(eh_node_at(n, "limits.max_pixels")->type, EH_NODE_FLOAT);
    CHECK(eh_config_set(n, "benchmark.categories=[物理,环境]", &err) == EH_OK);
    const eh_node *cats = eh_node_at(n, "benchmark.categories");
    CHECK(cats && cats->type == EH_NODE_SEQ && cats->u.list.count == 2);
    CHECK(eh_config_set(n, "run.keep_both=no", &err) == EH_OK);
    CHECK_EQ_STR(eh_node_str(eh_node_get(n, "run"), "keep_both", NULL), "no");
    /* a --set value has no place in the file: messages name the assignment */
    CHECK(eh_config_set(n, "editor.params.delay_ms=[1, 2]", &err) == EH_OK);
    CHECK_EQ_INT(eh_node_get(n, "editor")->line, 0);
    CHECK_EQ_INT(eh_node_at(n, "editor.params.delay_ms")->line, 0);
    CHECK_EQ_INT(eh_node_at(n, "editor.params.delay_ms")->u.list.items[1]->line, 0);
    CHECK(eh_config_set(n, "run.out.x=1", &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "'out' is not a section");
    CHECK(eh_config_set(n, "novalue", &err) != EH_OK);
    CHECK_CONTAINS(err.msg, "expected key.path=value");
    eh_node_free(n);

    CHECK(eh_nearest_word("benchmrk", (const char *const[]){ "benchmark", "judge", NULL }) != NULL);
    CHECK(eh_nearest_word("zzzzzzzz", (const char *const[]){ "benchmark", "judge", NULL }) == NULL);
}

static void test_load_file(void)
{
    eh_error err = { 0 };
    CHECK(eh_config_load("/nonexistent/config.yaml", NULL, &err) == NULL);
    CHECK_CONTAINS(err.msg, "/nonexistent/config.yaml: cannot open config");
    eh_error_clear(&err);
    eh_node *n = eh_config_load("config/qwen.yaml", NULL, &err);
    CHECK(n != NULL);
    CHECK_EQ_STR(eh_node_str(eh_node_at(n, "diffusion_model.params"), "model_name", NULL), "Qwen/Qwen-Image-Edit");
    eh_node_free(n);
}

int main(void)
{
    test_core_schema();
    test_structure_and_aliases();
    test_errors();
    test_limits();
    test_validate_and_set();
    test_load_file();
    return check_summary("test_config");
}
