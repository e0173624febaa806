%% @doc `emqx ctl guard backup_restore <name> [--remote] [--dry-run] [--exact] [identity=<file>]':
%% parses, calls `emqx_guard_restore:restore/2' (the one implementation, the dashboard's too) with
%% a report that prints each step as it comes, then prints what the preflight found and the
%% result. EMQX's own import lines are printed as EMQX prints them (as `emqx ctl data import'
%% does); the safety backup's steps as `guard backup_now' prints them. Parses and prints only.
-module(emqx_guard_restore_cli).

-import(emqx_guard_cli, [line/1, error_line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, facts_lines/1, step_line/1]).

%% @doc The usage lines of this command, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [{"guard backup_restore <name> [--remote] [--dry-run] [identity=<file>]",
      "Check a backup, take a safety backup of the present state, then import it with EMQX's import "
      "(--dry-run: check and show only; --remote: fetch it from off-site first)"}].

%% @doc Runs `backup_restore' (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_restore">>, Name | Flags]) ->
    case options(Flags, #{}) of
        {ok, Opts} -> restore(Name, Opts);
        error -> usage_error()
    end;
cmd([<<"backup_restore">>]) ->
    usage_error();
cmd(_) ->
    not_mine.

options([], Opts) -> {ok, Opts};
options([<<"--remote">> | Rest], Opts) -> options(Rest, Opts#{remote => true});
options([<<"--dry-run">> | Rest], Opts) -> options(Rest, Opts#{dry_run => true});
options([<<"--exact">> | Rest], Opts) -> options(Rest, Opts#{exact => true});
options([<<"identity=", Path/binary>> | Rest], Opts) when Path =/= <<>> -> options(Rest, Opts#{identity => Path});
options(_, _) -> error.

usage_error() ->
    error_line("expected backup_restore <name> [--remote] [--dry-run] [identity=<age identity file>]").

restore(Name, Opts) ->
    case emqx_guard_restore:restore(Name, Opts#{report => fun print/1}) of
        {ok, Report = #{<<"result">> := <<"dry_run">>}} ->
            [line(L) || L <- facts_lines(Report)],
            line(["Dry run: nothing was changed. Restore it with: emqx ctl guard backup_restore ", Name,
                  [<<" --remote">> || maps:get(remote, Opts, false)]]);
        {ok, Report} ->
            Safety = maps:get(<<"file">>, maps:get(<<"safety">>, Report, #{}), <<"?">>),
            line(text("Restored ~ts on ~ts in ~ts. The safety backup ~ts is kept until a later good backup replaced it.", [
                Name, maps:get(<<"node">>, Report), emqx_guard_render:duration_ms(maps:get(<<"duration_ms">>, Report, 0)), Safety
            ]));
        {error, {restore_failed, #{report := Report}} = Reason} ->
            error_reason(Reason),
            case maps:get(<<"safety">>, Report, undefined) of
                #{<<"file">> := Safety} ->
                    line(["The safety backup ", Safety, " is kept: emqx ctl guard backup_restore ", Safety,
                          " brings the state from before back (merged, as every import)."]);
                _ ->
                    ok
            end;
        {error, Reason} ->
            error_reason(Reason)
    end.

%% @doc What a preflight found, for people: one fact a line.
-spec facts_lines(map()) -> [binary()].
facts_lines(#{<<"preflight">> := F}) ->
    Node = maps:get(<<"node">>, F, #{}),
    Tables = maps:get(<<"tables">>, F, []),
    [text("Backup:      ~ts (~ts, ~ts, sha256 ~ts)", [
        maps:get(<<"name">>, F), maps:get(<<"source">>, F, <<"local">>), emqx_guard_render:size(maps:get(<<"size">>, F, 0)),
        maps:get(<<"sha256">>, F, <<"?">>)
    ]),
     text("EMQX:        made by EMQX ~ts ~ts; ~ts runs EMQX ~ts ~ts: EMQX's version rules let it import this", [
        maps:get(<<"version">>, F), maps:get(<<"edition">>, F), maps:get(<<"name">>, Node, <<"?">>),
        maps:get(<<"version">>, Node, <<"?">>), maps:get(<<"edition">>, Node, <<"?">>)
    ]),
     text("Config keys: ~ts", [joined(maps:get(<<"config_keys">>, F, []))]),
     text("Tables:      ~ts", [joined([table(N, R) || #{<<"name">> := N, <<"rows">> := R} <- Tables])]),
     text("API keys:    ~B record(s) in emqx_app; after the import the keys of api_key.bootstrap_file are written "
          "again, so the EMQX Operator's key is never locked out", [maps:get(<<"api_keys">>, F, 0)]),
     plugins_line(maps:get(<<"plugins">>, F, #{}))] ++
    [text("  ~ts: ~ts", [N, now_text(Now)]) || #{<<"name_vsn">> := N, <<"now">> := Now} <- maps:get(<<"plugins">>, maps:get(<<"plugins">>, F, #{}), [])] ++
    [text("  emqx_guard settings that differ from now: ~ts", [joined(D)]) || D <- [maps:get(<<"settings_differ">>, maps:get(<<"plugins">>, F, #{}), [])], D =/= []] ++
    [
     text("Import:      ~ts", [maps:get(<<"import">>, F)]),
     text("--exact:     ~ts", [maps:get(<<"exact">>, F)])] ++
        [text("Note:        ~ts", [N]) || N <- maps:get(<<"notes">>, F, [])];
facts_lines(_) ->
    [].

plugins_line(#{<<"carried">> := true, <<"file">> := File, <<"plugins">> := Ps}) ->
    text("Plugins:     ~B carried in ~ts (packages, configs, this plugin's settings); missing ones are installed", [length(Ps), File]);
plugins_line(#{<<"error">> := Error}) ->
    text("Plugins:     ~ts", [Error]);
plugins_line(_) ->
    <<"Plugins:     none carried: no plugins companion beside this backup (EMQX's export holds no plugins)">>.

now_text(<<"installed">>) -> <<"installed here: left as it is">>;
now_text(<<"missing">>) -> <<"missing here: installed from the backup">>;
now_text(<<"other_version">>) -> <<"another version installed here: left as it is">>.

table(Name, null) -> text("~ts (unreadable: no mnesia backup file)", [Name]);
table(Name, Rows) -> text("~ts (~B)", [Name, Rows]).

joined([]) -> <<"(none)">>;
joined(Items) -> iolist_to_binary(lists:join(<<", ">>, Items)).

%% Each step as it comes.
print(Event) ->
    case step_line(Event) of
        none -> ok;
        Line -> line(Line)
    end.

%% @doc The line of one step of a restore for people (the command prints it, the dashboard's page
%% shows it), or `none' for a step said otherwise (a refused preflight is the command's error).
-spec step_line(emqx_guard_steps:event()) -> binary() | none.
step_line({started, preflight, #{name := Name}}) ->
    unicode:characters_to_binary(["preflight: checking ", Name]);
step_line({done, preflight, _}) ->
    <<"preflight: done: it can be imported here">>;
step_line({failed, preflight, _}) ->
    %% the refusal is printed once, as the command's error
    none;
step_line({started, safety, _}) ->
    <<"safety: backing up the present state first (a normal backup run)">>;
step_line({done, safety, #{file := File, size := Size}}) ->
    text("safety: done: ~ts (~ts), kept until a later good backup replaced it", [File, emqx_guard_render:size(Size)]);
step_line({started, import, _}) ->
    <<"import: EMQX's data import (it merges: records not in the backup stay)">>;
step_line({line, import, Text}) ->
    %% as EMQX prints it
    unicode:characters_to_binary(Text);
step_line({started, plugins, _}) ->
    <<"plugins: bringing back what the backup's plugins companion carries">>;
step_line({line, plugins, Text}) ->
    unicode:characters_to_binary(["plugins: ", Text]);
step_line({done, api_keys, _}) ->
    <<"api keys: the keys of api_key.bootstrap_file were written again">>;
step_line(Event) ->
    emqx_guard_steps_cli:line(Event).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
