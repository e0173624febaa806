%% Common Test suite for the plugin's Prometheus metrics (issue 24): the collector registered in
%% the `default' registry of the prometheus.erl stand-ins (which behave as its source does:
%% `prometheus_registry', `prometheus_model_helpers', `prometheus_text_format') while the plugin
%% runs and removed when it stops; what EMQX's scrape renders parses as the Prometheus text format
%% (a strict parser here); every family is there with its type and HELP; the values follow the
%% runs (ok, failed, skipped), the off-site uploads (a real S3 server, s3s-fs) and the
%% notifications (a real HTTP receiver on 127.0.0.1), and the counters survive a restart. The
%% Grafana dashboard in docs/ and the README's alert rules name only metrics the collector emits.
-module(emqx_guard_metrics_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    collector_registered_while_running/1,
    every_family_parses_with_type_and_help/1,
    values_follow_runs_and_survive_restart/1,
    offsite_and_notification_counters/1,
    copies_last_result_per_node/1,
    without_prometheus_nothing_else_changes/1,
    dashboard_and_alerts_name_only_emitted_metrics/1
]).
%% the strict parser, for other suites
-export([parse/1]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, stop_app/0, set_now/1, ctl/1, result/1, wait_until/1, wait_idle/0]).

%% Every family, with its type.
-define(FAMILIES, [
    {"emqx_guard_backup_runs_total", counter},
    {"emqx_guard_backup_last_success_timestamp_seconds", gauge},
    {"emqx_guard_backup_last_run_timestamp_seconds", gauge},
    {"emqx_guard_backup_last_duration_seconds", gauge},
    {"emqx_guard_backup_last_size_bytes", gauge},
    {"emqx_guard_backup_next_run_timestamp_seconds", gauge},
    {"emqx_guard_backup_deadline_timestamp_seconds", gauge},
    {"emqx_guard_backup_healthy", gauge},
    {"emqx_guard_backups_kept", gauge},
    {"emqx_guard_backups_kept_bytes", gauge},
    {"emqx_guard_offsite_uploads_total", counter},
    {"emqx_guard_offsite_last_success_timestamp_seconds", gauge},
    {"emqx_guard_offsite_pending", gauge},
    {"emqx_guard_copies_last_result", gauge},
    {"emqx_guard_notify_deliveries_total", counter}
]).

all() ->
    [
        collector_registered_while_running,
        every_family_parses_with_type_and_help,
        values_follow_runs_and_survive_restart,
        offsite_and_notification_counters,
        copies_last_result_per_node,
        without_prometheus_nothing_else_changes,
        dashboard_and_alerts_name_only_emitted_metrics
    ].

init_per_suite(Config) ->
    Config1 = emqx_guard_ct_helper:init_suite(Config),
    ok = application:set_env(emqx_guard, offsite_retry_ms, []),
    ok = application:set_env(emqx_guard, offsite_requeue_ms, [3600000]),
    ok = application:set_env(emqx_guard, offsite_extra, #{max_retries => 0, connect_timeout_ms => 2000, timeout_ms => 20000}),
    ok = application:set_env(emqx_guard, notify, #{backoff_ms => [10], timeout_ms => 5000}),
    Config1.

end_per_suite(_Config) ->
    [application:unset_env(emqx_guard, K) || K <- [offsite_retry_ms, offsite_requeue_ms, offsite_extra, notify]],
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    ok = prometheus_registry:reset(),
    set_now(erlang:system_time(millisecond)),
    case TC of
        without_prometheus_nothing_else_changes -> ok;
        dashboard_and_alerts_name_only_emitted_metrics -> ok;
        _ -> start_app(fake_opts(#{}))
    end,
    Config1.

end_per_testcase(_TC, _Config) ->
    emqx_guard_ct_helper:end_case(),
    _ = [code:ensure_loaded(M) || M <- [prometheus_registry, prometheus_model_helpers]],
    ok = prometheus_registry:reset().

%%--------------------------------------------------------------------------------------------

%% Registered in the `default' registry while the plugin runs, once however often it starts;
%% nothing left there after it stops (and its cleanup was called), so EMQX's scrape never calls
%% into a plugin that is gone.
collector_registered_while_running(_Config) ->
    ?assertEqual([emqx_guard_metrics], prometheus_registry:collectors(default)),
    ?assertMatch(#{}, parse(prometheus_text_format:format(default))),
    stop_app(),
    ?assertEqual([], prometheus_registry:collectors(default)),
    ?assertEqual(<<"\n">>, prometheus_text_format:format(default)),
    start_app(fake_opts(#{})),
    ok = emqx_guard_metrics:register(),
    ?assertEqual([emqx_guard_metrics], prometheus_registry:collectors(default)),
    stop_app(),
    ?assertEqual([], prometheus_registry:collectors(default)).

%% The scrape parses strictly; every family is there with its type and a HELP text, named as the
%% Prometheus naming guide says (counters end in _total, a unit suffix, Unix times as
%% _timestamp_seconds); before any run the counters are 0 and what is not known has no sample.
every_family_parses_with_type_and_help(_Config) ->
    Families = scrape(),
    ?assertEqual(lists:sort([N || {N, _} <- ?FAMILIES]), lists:sort(maps:keys(Families))),
    lists:foreach(
        fun({Name, Type}) ->
            #{type := T, help := Help} = maps:get(Name, Families),
            ?assertEqual(Type, T, Name),
            ?assert(length(Help) > 20, {Name, Help}),
            ?assertEqual(Type =:= counter, lists:suffix("_total", Name), Name),
            ?assertMatch({match, _}, re:run(Name, "^emqx_guard_[a-z_]+$"), Name)
        end,
        ?FAMILIES
    ),
    ?assertEqual(#{"ok" => 0, "failed" => 0, "skipped" => 0}, by_label(Families, "emqx_guard_backup_runs_total", "result")),
    ?assertEqual(#{"ok" => 0, "failed" => 0}, by_label(Families, "emqx_guard_offsite_uploads_total", "result")),
    ?assertEqual([], samples(Families, "emqx_guard_backup_last_success_timestamp_seconds")),
    ?assertEqual([], samples(Families, "emqx_guard_offsite_pending")),
    ?assertEqual(1, value(Families, "emqx_guard_backup_healthy")),
    ?assertEqual(0, value(Families, "emqx_guard_backups_kept")),
    #{next_fire := Next} = emqx_guard_scheduler:status(),
    ?assertEqual(Next / 1000, value(Families, "emqx_guard_backup_next_run_timestamp_seconds")).

%% A good run, a failed one and a skipped fire each move what they should; the counters and the
%% last success come back after a restart (persisted with the run state).
values_follow_runs_and_survive_restart(_Config) ->
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    #{last_run := Good = #{started_at := S, duration_ms := D, size := Size}} = emqx_guard_scheduler:status(),
    F1 = scrape(),
    ?assertEqual(#{"ok" => 1, "failed" => 0, "skipped" => 0}, by_label(F1, "emqx_guard_backup_runs_total", "result")),
    ?assertEqual((S + D) / 1000, value(F1, "emqx_guard_backup_last_success_timestamp_seconds")),
    ?assertEqual(S / 1000, value(F1, "emqx_guard_backup_last_run_timestamp_seconds")),
    ?assertEqual(D / 1000, value(F1, "emqx_guard_backup_last_duration_seconds")),
    ?assertEqual(Size, value(F1, "emqx_guard_backup_last_size_bytes")),
    ?assertEqual(Size, filelib:file_size(maps:get(path, Good))),
    ?assertEqual(1, value(F1, "emqx_guard_backups_kept")),
    ?assertEqual(Size, value(F1, "emqx_guard_backups_kept_bytes")),
    ?assertEqual(1, value(F1, "emqx_guard_backup_healthy")),
    ?assert(is_float(value(F1, "emqx_guard_backup_deadline_timestamp_seconds"))),
    %% a failed run: counted, the health says so, the last success stays
    ok = emqx_mgmt_data_backup:set_mode({error, <<"mnesia is overloaded">>}),
    ["Error: backup failed" ++ _ | _] = result(ctl(["backup_now"])),
    #{last_run := #{started_at := FS}} = emqx_guard_scheduler:status(),
    F2 = scrape(),
    ?assertEqual(#{"ok" => 1, "failed" => 1, "skipped" => 0}, by_label(F2, "emqx_guard_backup_runs_total", "result")),
    ?assertEqual(0, value(F2, "emqx_guard_backup_healthy")),
    ?assertEqual(FS / 1000, value(F2, "emqx_guard_backup_last_run_timestamp_seconds")),
    ?assertEqual((S + D) / 1000, value(F2, "emqx_guard_backup_last_success_timestamp_seconds")),
    ?assertEqual(Size, value(F2, "emqx_guard_backup_last_size_bytes")),
    %% a scheduled fire while a run is going: skipped
    skip_one(),
    F3 = scrape(),
    ?assertEqual(#{"ok" => 2, "failed" => 1, "skipped" => 1}, by_label(F3, "emqx_guard_backup_runs_total", "result")),
    ?assertEqual(1, value(F3, "emqx_guard_backup_healthy")),
    %% a restart: the same counts and the same last success
    stop_app(),
    start_app(fake_opts(#{})),
    F4 = scrape(),
    [?assertEqual(samples(F3, N), samples(F4, N), N) || N <- ["emqx_guard_backup_runs_total",
        "emqx_guard_backup_last_success_timestamp_seconds", "emqx_guard_backup_last_size_bytes",
        "emqx_guard_backup_last_run_timestamp_seconds", "emqx_guard_backups_kept"]].

%% Off-site uploads (one passes against the real S3 server, one fails once it is stopped) and
%% notification deliveries (one accepted by a real HTTP receiver, one refused) are counted by
%% result, and both counters survive a restart.
offsite_and_notification_counters(Config) ->
    S3 = emqx_guard_s3_helper:start(?config(data_dir, Config)),
    {Url, Receiver} = http_receiver(),
    try
        ["backup_remote = s3" | _] = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S3)]),
        ["notify_webhook_url = " ++ _] = ctl(["notify_webhook", Url]),
        [_, "notify_on_success = on" | _] = ctl(["notify_on", "success=on"]),
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        wait_until(fun() -> counted({offsite_upload, ok}) =:= 1 andalso counted({notify_delivery, webhook, ok}) =:= 1 end),
        wait_offsite_idle(),
        F1 = scrape(),
        ?assertEqual(#{"ok" => 1, "failed" => 0}, by_label(F1, "emqx_guard_offsite_uploads_total", "result")),
        ?assertEqual(0, value(F1, "emqx_guard_offsite_pending")),
        #{state := #{last_success := OffsiteOk}} = emqx_guard_offsite_queue:status(),
        ?assertEqual(OffsiteOk / 1000, value(F1, "emqx_guard_offsite_last_success_timestamp_seconds")),
        ?assertEqual([{#{"channel" => "webhook", "result" => "failed"}, 0}, {#{"channel" => "webhook", "result" => "ok"}, 1}],
                     lists:sort(samples(F1, "emqx_guard_notify_deliveries_total"))),
        %% the S3 server and the receiver gone: the upload fails, and both deliveries (the backup's
        %% and the failed off-site copy's) are given up
        emqx_guard_s3_helper:stop(S3),
        exit(Receiver, kill),
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        wait_until(fun() -> counted({offsite_upload, failed}) =:= 1 andalso counted({notify_delivery, webhook, failed}) =:= 2 end),
        F2 = scrape(),
        ?assertEqual(#{"ok" => 1, "failed" => 1}, by_label(F2, "emqx_guard_offsite_uploads_total", "result")),
        ?assertEqual(1, value(F2, "emqx_guard_offsite_pending")),
        ?assertEqual([{#{"channel" => "webhook", "result" => "failed"}, 2}, {#{"channel" => "webhook", "result" => "ok"}, 1}],
                     lists:sort(samples(F2, "emqx_guard_notify_deliveries_total"))),
        ?assertEqual(OffsiteOk / 1000, value(F2, "emqx_guard_offsite_last_success_timestamp_seconds")),
        stop_app(),
        start_app(fake_opts(#{})),
        F3 = scrape(),
        [?assertEqual(samples(F2, N), samples(F3, N), N)
         || N <- ["emqx_guard_offsite_uploads_total", "emqx_guard_notify_deliveries_total",
                  "emqx_guard_offsite_last_success_timestamp_seconds"]]
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%% The last copy to each node (as another node reports it: `emqx_guard_copies:store/1'): 1 ok,
%% 0 failed, labelled with the node it went to.
copies_last_result_per_node(_Config) ->
    Ok = emqx_guard_copies:result('core_b@host', node(), <<"emqx-export-2026-11-25-10-00-00.000.tar.gz">>, replicate, 1, ok),
    Bad = emqx_guard_copies:result('core_c@host', node(), <<"emqx-export-2026-11-25-10-00-00.000.tar.gz">>, replicate, 1,
                                   {error, <<"no space left on device">>}),
    %% a node name with the characters a label value escapes (`"', `\')
    Odd = emqx_guard_copies:result('core_"d\\@host', node(), <<"emqx-export-2026-11-25-10-00-00.000.tar.gz">>, replicate, 1, ok),
    [ok = emqx_guard_copies:store(R) || R <- [Ok, Bad, Odd]],
    Text = prometheus_text_format:format(default),
    ?assertNotEqual(nomatch, binary:match(Text, <<"emqx_guard_copies_last_result{to=\"core_\\\"d\\\\@host\"} 1">>), Text),
    ?assertEqual([{#{"to" => "core_\"d\\@host"}, 1}, {#{"to" => "core_b@host"}, 1}, {#{"to" => "core_c@host"}, 0}],
                 lists:sort(samples(parse(Text), "emqx_guard_copies_last_result"))).

%% An EMQX without prometheus.erl: no collector, and the plugin works as before.
without_prometheus_nothing_else_changes(_Config) ->
    without_modules([prometheus_registry, prometheus_model_helpers], fun() ->
        start_app(fake_opts(#{})),
        ?assertMatch(["Backup done in " ++ _ | _], result(ctl(["backup_now"]))),
        ?assertMatch(["schedule: " ++ _ | _], ctl(["backup_status"])),
        ?assertEqual(error, emqx_guard_emqx:metric_family(<<"x">>, <<"y">>, gauge, [])),
        stop_app()
    end),
    ?assertEqual([], prometheus_registry:collectors(default)).

%% Runs F while the modules cannot be loaded (their beams hidden), as in an EMQX without them.
without_modules(Mods, F) ->
    Beams = [code:which(M) || M <- Mods],
    [begin _ = code:purge(M), true = code:delete(M), _ = code:purge(M), ok = file:rename(B, B ++ ".hidden") end
     || {M, B} <- lists:zip(Mods, Beams)],
    try
        [?assertEqual({error, nofile}, code:ensure_loaded(M)) || M <- Mods],
        F()
    after
        [begin ok = file:rename(B ++ ".hidden", B), {module, M} = code:ensure_loaded(M) end || {M, B} <- lists:zip(Mods, Beams)]
    end.

%% Every metric a query of the Grafana dashboard (docs/grafana-dashboard.json) or an alert rule of
%% the README names is one the collector emits.
dashboard_and_alerts_name_only_emitted_metrics(_Config) ->
    Emitted = [binary_to_list(N) || {N, _, _, _} <- emqx_guard_metrics:families()],
    ?assertEqual(lists:sort([N || {N, _} <- ?FAMILIES]), lists:sort(Emitted)),
    Root = project_root(),
    {ok, Json} = file:read_file(filename:join([Root, "docs", "grafana-dashboard.json"])),
    {ok, Dashboard} = emqx_guard_json:decode(Json),
    Exprs = exprs(Dashboard),
    ?assert(length(Exprs) >= 8, Exprs),
    {ok, Readme} = file:read_file(filename:join(Root, "README.md")),
    {match, [Rules]} = re:run(Readme, "<!-- BEGIN ALERTS -->(.*)<!-- END ALERTS -->", [dotall, {capture, all_but_first, binary}]),
    {match, RuleExprs} = re:run(Rules, "expr: (.*)", [global, {capture, all_but_first, binary}]),
    ?assertEqual(3, length(RuleExprs)),
    lists:foreach(
        fun(Expr) ->
            Named = metric_names(Expr),
            ?assertNotEqual([], Named, Expr),
            ?assertEqual([], Named -- Emitted, Expr)
        end,
        Exprs ++ lists:append(RuleExprs)
    ).

%%--------------------------------------------------------------------------------------------
%% The Prometheus text format, strictly (version 0.0.4): `# HELP <name> <text>' (escapes `\\'
%% and `\n'), `# TYPE <name> <type>' before the family's samples, each at most once per name;
%% samples `<name>[{<label>="<value>",...}] <value>' (label values escape `\\', `\"', `\n'), a
%% family's samples together, no label set twice, the name declared, a value Go's ParseFloat
%% reads; other `#' lines are comments; empty lines are allowed.

%% @doc The families of a scrape: `#{Name => #{type, help, samples := [{Labels, Value}]}}'; any
%% violation fails the test.
parse(Text) ->
    Lines = string:split(unicode:characters_to_list(Text), "\n", all),
    {Families, _Last} = lists:foldl(fun parse_line/2, {#{}, undefined}, Lines),
    maps:map(fun(_, F) -> F#{samples := lists:reverse(maps:get(samples, F))} end, Families).

parse_line("", Acc) ->
    Acc;
parse_line("# HELP " ++ Rest, {Fs, Last}) ->
    {Name, " " ++ Help} = name(Rest),
    F = family(Name, Fs),
    ?assertNot(maps:is_key(help, F), {second_help, Name}),
    {Fs#{Name => F#{help => unescape(Help, help)}}, Last};
parse_line("# TYPE " ++ Rest, {Fs, Last}) ->
    {Name, " " ++ Type} = name(Rest),
    F = family(Name, Fs),
    ?assertNot(maps:is_key(type, F), {second_type, Name}),
    ?assertEqual([], maps:get(samples, F), {type_after_samples, Name}),
    ?assert(lists:member(Type, ["counter", "gauge", "histogram", "summary", "untyped"]), {bad_type, Type}),
    {Fs#{Name => F#{type => list_to_atom(Type)}}, Last};
parse_line("#" ++ _Comment, Acc) ->
    Acc;
parse_line(Line, {Fs, Last}) ->
    {Name, Rest} = name(Line),
    ?assert(maps:is_key(Name, Fs) andalso maps:is_key(type, maps:get(Name, Fs)), {undeclared, Name}),
    ?assert(Last =:= Name orelse maps:get(samples, maps:get(Name, Fs)) =:= [], {samples_apart, Name}),
    {Labels, " " ++ ValueText} =
        case Rest of
            "{" ++ L -> labels(L, #{});
            _ -> {#{}, Rest}
        end,
    Value =
        case string:split(ValueText, " ") of
            [V] -> number(V);
            [V, Ts] -> _ = list_to_integer(Ts), number(V)
        end,
    F = #{samples := Samples} = maps:get(Name, Fs),
    ?assertNot(lists:keymember(Labels, 1, Samples), {label_set_twice, Name, Labels}),
    {Fs#{Name => F#{samples := [{Labels, Value} | Samples]}}, Name}.

family(Name, Fs) ->
    maps:get(Name, Fs, #{samples => []}).

name(Text) ->
    {match, [Name]} = re:run(Text, "^([a-zA-Z_:][a-zA-Z0-9_:]*)", [{capture, all_but_first, list}]),
    {Name, lists:nthtail(length(Name), Text)}.

labels("}" ++ Rest, Acc) ->
    {Acc, Rest};
labels(Text, Acc) ->
    {match, [Name]} = re:run(Text, "^([a-zA-Z_][a-zA-Z0-9_]*)=\"", [{capture, all_but_first, list}]),
    {Value, Rest} = label_value(lists:nthtail(length(Name) + 2, Text), []),
    ?assertNot(maps:is_key(Name, Acc), {label_twice, Name}),
    case Rest of
        "," ++ More -> labels(More, Acc#{Name => Value});
        "}" ++ More -> {Acc#{Name => Value}, More}
    end.

label_value("\\\\" ++ R, Acc) -> label_value(R, [$\\ | Acc]);
label_value("\\\"" ++ R, Acc) -> label_value(R, [$" | Acc]);
label_value("\\n" ++ R, Acc) -> label_value(R, [$\n | Acc]);
label_value("\\" ++ _, _Acc) -> error(bad_escape_in_label_value);
label_value("\"" ++ R, Acc) -> {lists:reverse(Acc), R};
label_value([C | R], Acc) when C =/= $\n -> label_value(R, [C | Acc]).

unescape("\\\\" ++ R, K) -> [$\\ | unescape(R, K)];
unescape("\\n" ++ R, K) -> [$\n | unescape(R, K)];
unescape("\\" ++ _, _K) -> error(bad_escape_in_help);
unescape([C | R], K) -> [C | unescape(R, K)];
unescape([], _K) -> [].

number("NaN") -> nan;
number("+Inf") -> infinity;
number("-Inf") -> '-infinity';
number(V) ->
    case string:to_integer(V) of
        {I, []} -> I;
        _ ->
            {F, []} = string:to_float(V),
            F
    end.

%%--------------------------------------------------------------------------------------------

scrape() ->
    parse(prometheus_text_format:format(default)).

samples(Families, Name) ->
    maps:get(samples, maps:get(Name, Families)).

value(Families, Name) ->
    [{#{}, V}] = samples(Families, Name),
    V.

by_label(Families, Name, Label) ->
    maps:from_list([{maps:get(Label, Labels), V} || {Labels, V} <- samples(Families, Name)]).

%% A scheduled fire every minute that comes while a (manual, slow) run goes: skipped.
skip_one() ->
    [_ | _] = ctl(["backup_timezone", "UTC"]),
    [_ | _] = ctl(["backup_cron", "* * * * *"]),
    ok = emqx_mgmt_data_backup:set_mode({hang, 1500}),
    Self = self(),
    _ = spawn_link(fun() -> Self ! {run, emqx_guard_scheduler:run_now()} end),
    wait_until(fun() -> maps:get(running, emqx_guard_scheduler:status()) =/= undefined end),
    #{next_fire := Next} = emqx_guard_scheduler:status(),
    Timer = last_wake_timer(none),
    set_now(Next),
    emqx_guard_ct_helper:deliver(Timer),
    receive
        {run, {ok, _}} -> ok
    after 30000 -> error(run_never_finished)
    end,
    ok = emqx_mgmt_data_backup:set_mode(ok),
    wait_idle().

last_wake_timer(Last) ->
    receive
        {fake_timer, _Ref, Delay, Pid, {emqx_guard_scheduler, wake, _} = Msg} -> last_wake_timer({Delay, Pid, Msg})
    after 0 ->
        case Last of
            none -> emqx_guard_ct_helper:next_timer(wake);
            _ -> Last
        end
    end.

counted(Key) ->
    maps:get(Key, emqx_guard_counters:all(), 0).

wait_offsite_idle() ->
    wait_until(fun() ->
        case emqx_guard_offsite_queue:status() of
            #{running := undefined, waiting := []} -> true;
            _ -> false
        end
    end).

%% A real HTTP server on 127.0.0.1 that answers every request `200 OK' (the webhook's receiver).
http_receiver() ->
    Self = self(),
    Pid = spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {packet, http_bin}]),
        {ok, Port} = inet:port(L),
        Self ! {http_port, self(), Port},
        serve(L)
    end),
    receive
        {http_port, Pid, Port} -> {"http://127.0.0.1:" ++ integer_to_list(Port) ++ "/hook/secret-path", Pid}
    end.

serve(L) ->
    {ok, S} = gen_tcp:accept(L),
    Length = headers(S, 0),
    ok = inet:setopts(S, [{packet, raw}]),
    _ = case Length of 0 -> ok; _ -> gen_tcp:recv(S, Length, 5000) end,
    ok = gen_tcp:send(S, <<"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok">>),
    ok = gen_tcp:close(S),
    serve(L).

headers(S, Length) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, {http_header, _, 'Content-Length', _, V}} -> headers(S, binary_to_integer(V));
        {ok, http_eoh} -> Length;
        {ok, _} -> headers(S, Length)
    end.

%% Every query in the dashboard (a target's `expr', a variable's `query' and `definition'),
%% wherever it is.
exprs(M) when is_map(M) ->
    lists:append([
        case lists:member(K, [<<"expr">>, <<"query">>, <<"definition">>]) andalso is_binary(V) of
            true -> [V];
            false -> exprs(V)
        end
     || {K, V} <- maps:to_list(M)
    ]);
exprs(L) when is_list(L) ->
    lists:append([exprs(V) || V <- L]);
exprs(_) ->
    [].

metric_names(Expr) ->
    case re:run(Expr, "emqx_guard_[a-z_]+", [global, {capture, all, list}]) of
        {match, Found} -> lists:usort(lists:append(Found));
        nomatch -> []
    end.

project_root() ->
    find_root(filename:dirname(code:which(?MODULE))).

find_root("/") ->
    ct:fail("cannot find the project root above ~ts", [code:which(?MODULE)]);
find_root(Dir) ->
    case filelib:is_regular(filename:join([Dir, "erlang", "emqx_guard.app.src"])) andalso
        filelib:is_regular(filename:join(Dir, "rebar.config"))
    of
        true -> Dir;
        false -> find_root(filename:dirname(Dir))
    end.
