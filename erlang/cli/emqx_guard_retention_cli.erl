%% @doc The `emqx ctl guard' commands about retention: the policies (`backup_keep',
%% `backup_remote_keep'), the pins (`backup_pin', `backup_unpin'), `backup_prune --dry-run' (every
%% backup here and off-site with the rule(s) that keep it, or `delete') and `backup_list --why'
%% (the listing with that column). Parses and prints only: the decision is the core's, the same
%% one the real prune makes (`emqx_guard_backups:plan/2', `offsite_prune_async/4' as a dry run),
%% the rules `emqx_guard_retention''s.
-module(emqx_guard_retention_cli).

-import(emqx_guard_cli, [line/1, error_line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, keep_line/1]).

%% A dry run off-site: the NIF bounds every request; this bounds the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).

%% @doc The usage lines of these commands, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_keep [<rule> ...]",
            "Show or set the retention policy: last=N hourly=N daily=N weekly=N monthly=N yearly=N within=<2d|36h|1y6m> "
            "(restic's forget rules; N alone is last=N; default 5)"},
        {"guard backup_remote_keep [<rule> ...|local]", "Show or set the off-site policy (default local: as backup_keep)"},
        {"guard backup_pin [<name>]", "List the pinned backups, or pin one: never deleted by retention, anywhere"},
        {"guard backup_unpin <name>", "Let retention treat a pinned backup like the others again"},
        {"guard backup_prune --dry-run", "Show every backup, here and off-site, with the rule(s) that keep it or delete"},
        {"guard backup_list --why", "List the backups with the rule(s) that keep each one, or delete"}
    ].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_keep">>]) -> line(keep_line(emqx_guard_settings:get()));
cmd([<<"backup_keep">> | Rules]) -> set(#{backup_keep => joined(Rules)});
cmd([<<"backup_remote_keep">>]) -> line(remote_keep_line(emqx_guard_settings:get()));
cmd([<<"backup_remote_keep">> | Rules]) -> set(#{backup_remote_keep => joined(Rules)});
cmd([<<"backup_pin">>]) -> pins();
cmd([<<"backup_pin">>, Name]) -> pin(Name);
cmd([<<"backup_unpin">>, Name]) -> unpin(Name);
cmd([<<"backup_pin">> | _]) -> error_line("expected backup_pin <name> (one export name; guard backup_list shows them)");
cmd([<<"backup_unpin">> | _]) -> error_line("expected backup_unpin <name> (guard backup_pin lists the pinned ones)");
cmd([<<"backup_prune">>, <<"--dry-run">>]) -> dry_run();
cmd([<<"backup_list">>, <<"--why">>]) -> list_why();
cmd(_) -> not_mine.

%%--------------------------------------------------------------------
%% The policies
%%--------------------------------------------------------------------

%% The shell splits `last=3 daily=7' into words: they are one policy.
joined(Words) ->
    iolist_to_binary(lists:join(<<" ">>, Words)).

set(Changes) ->
    emqx_guard_cli:set(Changes, fun() -> show(maps:keys(Changes)) end).

show([backup_keep]) -> line(keep_line(emqx_guard_settings:get()));
show([backup_remote_keep]) -> line(remote_keep_line(emqx_guard_settings:get()));
show([backup_pins]) -> ok.

%% @doc `backup_keep = 5' for `last=5' alone (as ever), else the policy quoted, with the zone its
%% periods are counted in.
-spec keep_line(emqx_guard_settings:settings()) -> binary().
keep_line(S = #{backup_keep := Stored}) ->
    policy_line(<<"backup_keep">>, Stored, S).

remote_keep_line(S) ->
    case maps:get(backup_remote_keep, S, local) of
        local -> text("backup_remote_keep = local (as backup_keep: \"~ts\")", [emqx_guard_retention:text(maps:get(backup_keep, S))]);
        Stored -> policy_line(<<"backup_remote_keep">>, Stored, S)
    end.

policy_line(Key, N, _S) when is_integer(N) ->
    text("~ts = ~B", [Key, N]);
policy_line(Key, Policy, #{backup_timezone := Zone}) ->
    text("~ts = \"~ts\" (periods in ~ts)", [Key, Policy, zone(Zone)]).

zone(Zone) ->
    case emqx_guard_cron:zone_name(Zone) of
        {ok, Zone} -> Zone;
        {ok, Iana} -> text("~ts (~ts)", [Zone, Iana]);
        {error, _} -> Zone
    end.

%%--------------------------------------------------------------------
%% Pins
%%--------------------------------------------------------------------

pins() ->
    case maps:get(backup_pins, emqx_guard_settings:get()) of
        [] -> line("No backup is pinned (guard backup_pin <name> pins one)");
        Pins -> line(text("~B pinned (never deleted by retention, on any node or off-site):", [length(Pins)])),
                lists:foreach(fun(P) -> line(["  ", P]) end, Pins)
    end.

pin(Name) ->
    Pins = maps:get(backup_pins, emqx_guard_settings:get()),
    case {lists:member(Name, Pins), emqx_guard_core:is_export_name(Name)} of
        {true, _} ->
            line(text("~ts is pinned already", [Name]));
        {false, false} ->
            {error, Why} = emqx_guard_retention:validate_pins([Name]),
            error_reason(Why);
        {false, true} ->
            case exists(Name) of
                true ->
                    pin_set(Pins ++ [Name], text("Pinned ~ts: retention never deletes it, on any node or off-site "
                                                 "(guard backup_unpin ~ts lets it go)", [Name, Name]));
                false ->
                    error_line(text("no backup named ~ts here or off-site (see guard backup_list and backup_list --remote)",
                                    [Name]))
            end
    end.

unpin(Name) ->
    Pins = maps:get(backup_pins, emqx_guard_settings:get()),
    case lists:member(Name, Pins) of
        true ->
            pin_set(Pins -- [Name], text("Unpinned ~ts: retention treats it like the other backups again", [Name]));
        false ->
            error_line(text("~ts is not pinned (guard backup_pin lists the pinned backups)", [Name]))
    end.

pin_set(Pins, Done) ->
    emqx_guard_cli:set(#{backup_pins => Pins}, fun() -> line(Done) end).

%% On this node's disk, or among the off-site backups (when a destination is set).
exists(Name) ->
    filelib:is_regular(filename:join(emqx_guard_emqx:backup_dir(), Name)) orelse
        case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
            off ->
                false;
            {ok, Config} ->
                case job(emqx_guard_core:offsite_list_async(Config, #{})) of
                    {ok, Remote} -> lists:any(fun(#{export_name := E}) -> E =:= Name end, Remote);
                    {error, _} -> false
                end
        end.

%%--------------------------------------------------------------------
%% backup_prune --dry-run, backup_list --why
%%--------------------------------------------------------------------

dry_run() ->
    S = emqx_guard_settings:get(),
    Dir = emqx_guard_emqx:backup_dir(),
    Zone = maps:get(backup_timezone, S),
    case emqx_guard_backups:plan(Dir, emqx_guard_retention:local(S)) of
        {ok, #{plan := Plan, delete := Doomed}} ->
            Policy = emqx_guard_retention:text(maps:get(backup_keep, S)),
            line(headline(text("Retention here (~ts)", [Policy]), length(Doomed), length(Plan), Dir)),
            lists:foreach(fun(B) -> line(local_line(Zone, B)) end, Plan);
        {error, Why} ->
            error_reason(Why)
    end,
    remote_dry_run(S).

headline(What, 0, Total, Where) ->
    text("~ts deletes nothing of the ~B backup(s) in ~ts:", [What, Total, Where]);
headline(What, Doomed, Total, Where) ->
    text("~ts would delete ~B of the ~B backup(s) in ~ts (dry run, nothing deleted):", [What, Doomed, Total, Where]).

%% One backup of the plan: name, size, time, then what becomes of it (and why it does not
%% verify, for one that does not).
local_line(Zone, B = #{why := Why}) ->
    Error =
        case B of
            #{error := E} when is_binary(E) -> [" (", E, ")"];
            _ -> []
        end,
    iolist_to_binary([emqx_guard_backups_cli:backup_line(Zone, maps:without([verified], B)), "  ", Why, Error]).

%% The off-site half: the plan `emqx_guard_report:remote_plan/2' makes (the API's
%% `GET backups?remote=true&why=true' shows the same).
remote_dry_run(S) ->
    case emqx_guard_report:remote_plan(S, ?AWAIT_MS) of
        {error, {no_destination, off}} ->
            ok;
        {ok, #{destination := Where, plan := Plan, deleted := Doomed, paused := Paused}} ->
            Policy = emqx_guard_retention:remote_text(S),
            What = text("Off-site retention (~ts)", [Policy]),
            case Paused of
                undefined ->
                    line(headline(What, length(Doomed), length(Plan), Where));
                _ ->
                    line(["Nothing is deleted off-site now: remote retention is ", emqx_guard_offsite:retention_line(Paused)]),
                    line(text("After guard backup_remote_prune --confirm, off-site retention (~ts) would delete ~B of the ~B backup(s) in ~ts:",
                              [Policy, length(Doomed), length(Plan), Where]))
            end,
            Zone = maps:get(backup_timezone, S),
            lists:foreach(fun(R = #{why := Why}) -> line([emqx_guard_offsite_cli:remote_line(Zone, R), "  ", Why]) end, Plan);
        {error, {_, Detail}} ->
            error_line(["off-site: ", Detail])
    end.

list_why() ->
    S = emqx_guard_settings:get(),
    Dir = emqx_guard_emqx:backup_dir(),
    Zone = maps:get(backup_timezone, S),
    case {emqx_guard_backups:list(Dir), emqx_guard_backups:plan(Dir, emqx_guard_retention:local(S))} of
        {{ok, []}, _} ->
            line(text("No backups in ~ts", [Dir]));
        {{ok, Backups}, {ok, #{plan := Plan}}} ->
            Why = maps:from_list([{N, W} || #{name := N, why := W} <- Plan]),
            line(text("~B backup(s) in ~ts, newest first, with what retention (~ts) does with each:",
                      [length(Backups), Dir, emqx_guard_retention:text(maps:get(backup_keep, S))])),
            lists:foreach(
                fun(B = #{name := N}) ->
                    line([emqx_guard_backups_cli:backup_line(Zone, B), "  -> ", maps:get(N, Why, <<"new since the plan">>)])
                end,
                Backups
            );
        {{error, Why}, _} ->
            error_reason(Why);
        {_, {error, Why}} ->
            error_reason(Why)
    end.

%%--------------------------------------------------------------------

job({ok, Job}) -> emqx_guard_core:await(Job, ?AWAIT_MS);
job({error, _} = Error) -> Error.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
