#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% Refreshes the sample output in README.md. Runs the built plugin (_build/default) in this node
%% against the EMQX test stand-ins (_build/test: run `rebar3 as test compile` first) with a fresh
%% data directory, types the commands below into the emqx_ctl stand-in, and writes each command
%% line and what it printed between the `<!-- BEGIN SAMPLES -->' and `<!-- END SAMPLES -->'
%% markers of README.md. The temporary data directory is shown as /opt/emqx/data (the docker
%% image's); nothing else in the output is edited. The off-site samples upload to a real S3 server
%% (s3s-fs, as in the tests: `make test-deps' installs it) on 127.0.0.1:?S3_PORT.
%%
%% Then the restore transcript (`restore_samples/1'), then the retention transcript (between `<!-- BEGIN RETENTION SAMPLES -->' and
%% `<!-- END RETENTION SAMPLES -->'): the backup directory is given half a year of backups as a
%% node that ran weekly on Sundays and then daily for the last ten days made them (real exports in
%% EMQX's layout, named as EMQX names them, at 02:00 node time), and the commands of
%% retention_commands/0 are run on them.
%%
%% Usage (from the project root): escript scripts/readme_samples.escript
-mode(compile).

-include_lib("kernel/include/file.hrl").

%% The port of the aiosmtpd server that stands for the operator's mail relay.
-define(SMTP_PORT, 2525).
%% The port of the S3 server (s3s-fs) that stands for the operator's bucket (MinIO's usual port).
-define(S3_PORT, 9000).

%% {Show, Args}: Args exactly as emqx_ctl:run_command/1 receives them from the shell.
commands() ->
    [
        {show, ["guard"]},
        {show, ["guard", "backup_cron"]},
        {show, ["guard", "backup_cron", "0 1 * * 0"]},
        %% unquoted in /opt/emqx: the shell replaced each * by the file names there
        {show, ["guard", "backup_cron", "0", "1" | glob() ++ glob() ++ ["0"]]},
        {show, ["guard", "backup_cron", "0 1 * * * *"]},
        {show, ["guard", "backup_keep"]},
        {show, ["guard", "backup_keep", "3"]},
        {show, ["guard", "backup_timezone"]},
        {show, ["guard", "backup_timezone", "Europe/Berlin"]},
        {show, ["guard", "backup_catchup"]},
        {show, ["guard", "backup_catchup", "6h"]},
        {show, ["guard", "backup_now"]},
        {show, ["guard", "backup_now"]},
        {show, ["guard", "backup_now"]},
        {show, ["guard", "backup_list"]},
        {show, ["guard", "backup_list", "--json"]},
        {show, ["guard", "backup_status"]},
        {show, ["guard", "backup_verify", "--all"]},
        {show, ["guard", "backup_keep", "2"]},
        {show, ["guard", "backup_prune", "--dry-run"]},
        %% off-site copies: the bucket `backups' of the S3 server main/1 starts on ?S3_PORT
        {hide, ["guard", "backup_remote", "s3", "bucket=backups", "prefix=emqx/prod",
            "endpoint=http://127.0.0.1:" ++ integer_to_list(?S3_PORT), "path_style=on",
            "access_key=" ++ binary_to_list(emqx_guard_s3_helper:access_key()),
            "secret_key=" ++ binary_to_list(emqx_guard_s3_helper:secret_key())]},
        {show, ["guard", "backup_remote"]},
        {show, ["guard", "backup_now"]},
        {wait, offsite},
        {show, ["guard", "backup_status"]},
        {show, ["guard", "backup_status", "--json"]},
        {show, ["guard", "backup_list", "--remote"]},
        {hide, ["guard", "backup_remote", "off"]},
        {show, ["guard", "notify"]},
        %% a relay on the node itself: the aiosmtpd server main/1 starts on ?SMTP_PORT
        {show, ["guard", "notify_smtp", "server=127.0.0.1", "port=" ++ integer_to_list(?SMTP_PORT), "tls=none",
            "from=emqx-guard@example.com"]},
        {show, ["guard", "notify_to", "ops@example.com"]},
        {show, ["guard", "notify_on", "success=on"]},
        {show, ["guard", "notify_test"]},
        {show, ["guard", "notify_webhook", "https://hooks.example.com/services/T000/B000/XXXXXXXX"]},
        {show, ["guard", "notify_webhook", "off"]},
        {show, ["guard", "notify_slack", "url=https://hooks.slack.com/services/T000/B000/XXXXXXXX"]},
        {show, ["guard", "notify_wecom", "url=http://wecom-relay.internal/cgi-bin/webhook/send?key=XXXXXXXX"]},
        {show, ["guard", "notify_test", "matrix"]},
        {show, ["guard", "notify_slack", "off"]},
        {show, ["guard", "sys_events"]}
    ].

%% Retention: the policy, a pin, the dry run over the backups retention_backups/1 makes.
retention_commands() ->
    [
        {show, ["guard", "backup_keep", "last=3", "daily=7", "weekly=4", "monthly=6"]},
        {show, ["guard", "backup_remote_keep", "daily=30", "monthly=12"]},
        {show, ["guard", "backup_pin", "emqx-export-2026-07-12-02-00-00.000.tar.gz"]},
        {show, ["guard", "backup_prune", "--dry-run"]},
        {show, ["guard", "backup_keep", "daily=-1"]}
    ].

glob() -> ["bin", "data", "etc", "lib", "log", "releases"].

main(_) ->
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    ok = file:set_cwd(Root),
    [Standins | _] =
        [filename:dirname(F) || F <- filelib:wildcard("_build/test/lib/emqx_guard/**/emqx_ctl.beam")] ++
            [missing],
    Standins =/= missing orelse fail("run `rebar3 as test compile` first"),
    true = code:add_patha(filename:absname("_build/default/lib/emqx_guard/ebin")),
    true = code:add_patha(filename:absname(Standins)),
    Data = string:trim(os:cmd("mktemp -d /tmp/emqx_guard_samples.XXXXXX")),
    Smtp = start_smtp(),
    emqx_guard_s3_helper:binary() =/= false orelse fail("s3s-fs is not installed (make test-deps)"),
    S3 = emqx_guard_s3_helper:start(filename:join(Data, "s3"), ?S3_PORT),
    try
        emqx:set_data_dir(Data),
        {ok, _} = emqx_ctl:start(),
        {ok, _} = application:ensure_all_started(emqx_guard),
        Blocks = [run(Show, Args, Data) || {Show, Args} <- commands()],
        Restore = restore_samples(Data),
        retention_backups(Data),
        retention_bucket(),
        Retention = [run(Show, Args, Data) || {Show, Args} <- retention_commands()],
        ok = application:stop(emqx_guard),
        write_readme("SAMPLES", lists:append(Blocks)),
        write_readme("RETENTION SAMPLES", lists:append(Retention)),
        write_readme("RESTORE SAMPLES", lists:append(Restore))
    after
        stop_smtp(Smtp),
        emqx_guard_s3_helper:stop(S3),
        os:cmd("rm -rf " ++ Data)
    end.

%% The restore transcript (between `<!-- BEGIN RESTORE SAMPLES -->' and `<!-- END RESTORE
%% SAMPLES -->'): the node holds two banned clients, a config key and a plugin (my_plugin, with
%% its config) when a backup is taken; then it loses the plugin and one banned client changes,
%% as a node rebuilt or changed by mistake would; the dry run and the restore of that backup
%% follow, through the stand-ins' import, which merges as EMQX's does.
restore_samples(Data) ->
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"flooding">>}),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-2">>, <<"bad password">>}),
    ok = emqx_guard_standin_db:set_config(<<"mqtt">>, <<"{max_packet_size = 1MB}">>),
    Dir = emqx_plugins:install_dir(),
    Package = filename:join(Dir, "my_plugin-1.0.0.tar.gz"),
    ok = filelib:ensure_dir(Package),
    ok = erl_tar:create(Package, [{"my_plugin-1.0.0/release.json", <<"{\"name\": \"my_plugin\"}">>}], [compressed]),
    Conf = filename:join([Data, "plugins", "my_plugin", "config.hocon"]),
    ok = filelib:ensure_dir(Conf),
    ok = file:write_file(Conf, <<"rate_limit = 100\n">>),
    ok = emqx_plugins:installed(<<"my_plugin-1.0.0">>, true, true),
    [] = run(hide, ["guard", "backup_now"], Data),
    {ok, #{last_run := #{file := Name0}}} = {ok, emqx_guard_scheduler:status()},
    Name = binary_to_list(Name0),
    ok = emqx_plugins:reset(),
    os:cmd("rm -rf '" ++ Dir ++ "' '" ++ filename:dirname(Conf) ++ "'"),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"changed by mistake">>}),
    [run(show, ["guard", "backup_restore", Name, "--dry-run"], Data),
     run(show, ["guard", "backup_restore", Name], Data),
     run(show, ["guard", "backup_status"], Data)].

%% aiosmtpd's own command line server (it prints what it receives): `guard notify_test' then
%% shows what a real server answered.
start_smtp() ->
    Port = open_port(
        {spawn, "python3 -m aiosmtpd -n -l 127.0.0.1:" ++ integer_to_list(?SMTP_PORT)},
        [exit_status, stderr_to_stdout]
    ),
    wait_for_smtp(50),
    Port.

wait_for_smtp(0) ->
    fail("the aiosmtpd server did not start (python3 -m pip install aiosmtpd)");
wait_for_smtp(N) ->
    case gen_tcp:connect("127.0.0.1", ?SMTP_PORT, [], 200) of
        {ok, S} ->
            gen_tcp:close(S);
        {error, _} ->
            timer:sleep(100),
            wait_for_smtp(N - 1)
    end.

stop_smtp(Port) ->
    case erlang:port_info(Port, os_pid) of
        {os_pid, Pid} -> os:cmd("kill " ++ integer_to_list(Pid));
        undefined -> ok
    end.

run(wait, offsite, _Data) ->
    %% the upload follows the backup: wait until it is done, so the status shows it
    wait_offsite(500),
    [];
run(Show, Args, Data) ->
    {_, Out} = emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command(Args) end),
    case Show of
        hide ->
            [];
        show ->
            Text = string:replace(Out, Data, "/opt/emqx/data", all),
            ["$ emqx ctl ", lists:join(" ", [quote(A) || A <- Args]), "\n", Text, "\n"]
    end.

wait_offsite(0) ->
    fail("the off-site upload did not finish");
wait_offsite(N) ->
    case emqx_guard_offsite_queue:status() of
        #{running := undefined, waiting := []} ->
            ok;
        _ ->
            timer:sleep(20),
            wait_offsite(N - 1)
    end.

quote(A) ->
    case A =:= "" orelse lists:any(fun(C) -> lists:member(C, " *?$\"'") end, A) of
        true -> [$', A, $'];
        false -> A
    end.

%% The same backups in the bucket, under another prefix (`emqx/site-b'), uploaded as the off-site
%% queue uploads them (the NIF's upload, which records each object's checksums): the dry run then
%% shows the off-site policy's decision too. The destination is set again after, so the
%% queue finds them all there (the last of them, the newest, is the node's own).
retention_bucket() ->
    Remote = ["guard", "backup_remote", "s3", "bucket=backups", "prefix=emqx/site-b",
              "endpoint=http://127.0.0.1:" ++ integer_to_list(?S3_PORT), "path_style=on",
              "access_key=" ++ binary_to_list(emqx_guard_s3_helper:access_key()),
              "secret_key=" ++ binary_to_list(emqx_guard_s3_helper:secret_key())],
    {ok, Config} = emqx_guard_offsite_config:to_nif(#{
        backup_remote_type => <<"s3">>, backup_remote_bucket => <<"backups">>,
        backup_remote_prefix => <<"emqx/site-b">>, backup_remote_path_style => true,
        backup_remote_endpoint => list_to_binary("http://127.0.0.1:" ++ integer_to_list(?S3_PORT)),
        backup_remote_access_key => emqx_guard_s3_helper:access_key(),
        backup_remote_secret_key => emqx_guard_s3_helper:secret_key()}),
    Dir = emqx_guard_emqx:backup_dir(),
    [begin
         {ok, Job} = emqx_guard_nif:offsite_upload_async(Config, list_to_binary(filename:join(Dir, F)), #{}),
         {ok, _} = emqx_guard_core:await(Job, 60000)
     end || F <- lists:sort(filelib:wildcard("emqx-export-*.tar.gz", Dir))],
    _ = emqx_ctl:run_command(Remote),
    wait_offsite(500).

%% The backup directory holding only half a year of backups: Sundays from 2026-06-07 to
%% 2026-11-15, then every day from 2026-11-21 to 2026-11-30, each at 02:00.
retention_backups(Data) ->
    Dir = filename:join(Data, "backup"),
    [ok = file:delete(filename:join(Dir, F)) || F <- filelib:wildcard("emqx-export-*.tar.gz", Dir)],
    Day = fun(D) -> calendar:date_to_gregorian_days(D) end,
    Sundays = lists:seq(Day({2026, 6, 7}), Day({2026, 11, 15}), 7),
    Days = lists:seq(Day({2026, 11, 21}), Day({2026, 11, 30})),
    [make_export(Dir, calendar:gregorian_days_to_date(D)) || D <- Sundays ++ Days],
    ok.

make_export(Dir, {Y, M, D}) ->
    Base = lists:flatten(io_lib:format("emqx-export-~4..0b-~2..0b-~2..0b-02-00-00.000", [Y, M, D])),
    {ok, Tar} = erl_tar:open(filename:join(Dir, Base ++ ".tar.gz"), [write, compressed]),
    ok = erl_tar:add(Tar, <<"edition = ce\nversion = \"5.3.2\"\n">>, Base ++ "/META.hocon", []),
    ok = erl_tar:add(Tar, <<>>, Base ++ "/cluster.hocon", []),
    ok = erl_tar:add(Tar, crypto:strong_rand_bytes(1500000), Base ++ "/mnesia/emqx_retainer", []),
    ok = erl_tar:close(Tar),
    %% written when it was made, as a real export is
    ok = file:write_file_info(filename:join(Dir, Base ++ ".tar.gz"), #file_info{mtime = {{Y, M, D}, {2, 0, 1}}}).

write_readme(Marker, Samples) ->
    {ok, Readme} = file:read_file("README.md"),
    Re = ["(?s)^(.*<!-- BEGIN ", Marker, " -->\n).*(<!-- END ", Marker, " -->.*)$"],
    case re:run(Readme, Re, [{capture, all_but_first, binary}]) of
        {match, [Before, After]} ->
            Text = string:trim(unicode:characters_to_binary(Samples), trailing),
            Body = unicode:characters_to_binary(["```text\n", Text, "\n```\n"]),
            ok = file:write_file("README.md", [Before, Body, After]),
            io:format("README.md: ~ts refreshed~n", [string:lowercase(Marker)]);
        nomatch ->
            fail(["README.md has no <!-- BEGIN ", Marker, " --> / <!-- END ", Marker, " --> markers"])
    end.

fail(Msg) ->
    io:format(standard_error, "readme_samples: ~ts~n", [Msg]),
    halt(1).
