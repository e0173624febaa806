#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% Writes the release.json of the emqx_guard plugin package (the file EMQX's plugin
%% manager and dashboard read), with the fields emqx_plugrel 0.5 writes (metadata_vsn 0.2.0).
%%
%% Usage: release_json.escript OUT_FILE APP_FILE REL_VSN PRIV_DIR GIT_REF DATE REPO GLIBC BUILD_INFO
%%   OUT_FILE  where to write release.json
%%   APP_FILE  the compiled .app (its vsn and description are used)
%%   REL_VSN   the package version (must equal the app's vsn: the version lives in one place)
%%   PRIV_DIR  the staged priv/ dir (with_config_schema is true when config_schema.avsc is in it)
%%   GIT_REF   `git rev-parse HEAD`, or "unknown" outside git
%%   DATE      the commit date (YYYY-MM-DD) or, outside git, the build date
%%   REPO      the project's repository URL
%%   GLIBC     the oldest glibc the NIF libraries load on (their build baseline, e.g. 2.17)
%%   BUILD_INFO  where to write the build's OTP release and compiler version (an Erlang term file)
%% built_on_otp_release is the OTP release of the erl running this script (the build's OTP).
%% compatibility names EMQX, and the OS, architectures (one per PRIV_DIR/<arch>/emqx_guard_nif.so)
%% and glibc the native library needs.
%% Keys are written in a fixed order, so the same inputs give the same bytes.
-mode(compile).

%% Who builds and supports the package: shown on the dashboard's plugin page.
-define(AUTHORS, <<"emqx_guard maintainers">>).
-define(BUILDER_NAME, <<"emqx_guard maintainers">>).
-define(BUILDER_CONTACT, <<"maintainers@users.noreply.r-seed-c991b263.example">>).
-define(FUNCTIONALITY, <<"Scheduled, verified and pruned data backups">>).
-define(COMPATIBILITY, <<">= 5.1.0">>).
-define(METADATA_VSN, <<"0.2.0">>).

main([OutFile, AppFile, RelVsn, PrivDir, GitRef, Date, Repo, Glibc, BuildInfo]) ->
    try
        {App, AppVsn, Description} = read_app(AppFile),
        Archs = lists:sort([
            filename:basename(filename:dirname(F))
         || F <- filelib:wildcard(filename:join([PrivDir, "*", "emqx_guard_nif.so"]))
        ]),
        Archs =/= [] orelse fail("no ~ts/<arch>/emqx_guard_nif.so", [PrivDir]),
        RelVsn =:= AppVsn orelse
            fail("package version ~s differs from the compiled app's vsn ~s (stale build?)",
                 [RelVsn, AppVsn]),
        Info = [
            {name, bin(App)},
            {rel_vsn, bin(RelVsn)},
            {rel_apps, [bin([App, "-", AppVsn])]},
            {description, bin(Description)},
            {authors, ?AUTHORS},
            {builder, [{name, ?BUILDER_NAME}, {contact, ?BUILDER_CONTACT}, {website, bin(Repo)}]},
            {repo, bin(Repo)},
            {functionality, ?FUNCTIONALITY},
            {compatibility, [
                {emqx, ?COMPATIBILITY},
                {os, <<"linux">>},
                {arch, bin(lists:join(", ", Archs))},
                {glibc, bin([">= ", Glibc])}
            ]},
            {git_ref, bin(GitRef)},
            {git_commit_or_build_date, bin(Date)},
            {metadata_vsn, ?METADATA_VSN},
            {built_on_otp_release, bin(erlang:system_info(otp_release))},
            {with_config_schema, filelib:is_regular(filename:join(PrivDir, "config_schema.avsc"))},
            %% EMQX 6.1.1+ shows this path of the plugin's API (emqx_guard_api: priv/ui.html) in an
            %% iframe on the plugin's dashboard page; EMQX 5.1-5.8 check only the keys they need
            %% (name, rel_vsn, rel_apps, description) and pass the others through unread
            {index, <<"/ui">>}
        ],
        ok = file:write_file(OutFile, [encode(Info, 0), $\n]),
        ok = application:load(compiler),
        {ok, CompilerVsn} = application:get_key(compiler, vsn),
        ok = file:write_file(BuildInfo, io_lib:format("~p.~n~p.~n", [
            {otp_release, erlang:system_info(otp_release)}, {compiler_vsn, CompilerVsn}
        ]))
    catch
        throw:{fail, Msg} ->
            io:format(standard_error, "release_json: ~ts~n", [Msg]),
            halt(1)
    end;
main(_) ->
    io:format(standard_error,
              "usage: release_json.escript OUT_FILE APP_FILE REL_VSN PRIV_DIR GIT_REF DATE REPO GLIBC BUILD_INFO~n", []),
    halt(2).

read_app(AppFile) ->
    case file:consult(AppFile) of
        {ok, [{application, App, Props}]} ->
            {vsn, Vsn} = lists:keyfind(vsn, 1, Props),
            {description, Desc} = lists:keyfind(description, 1, Props),
            {atom_to_list(App), Vsn, Desc};
        Other ->
            fail("cannot read ~ts: ~p", [AppFile, Other])
    end.

fail(Fmt, Args) ->
    throw({fail, io_lib:format(Fmt, Args)}).

bin(X) when is_atom(X) -> atom_to_binary(X, utf8);
bin(X) -> unicode:characters_to_binary(X).

%% A small JSON writer for the shapes above: objects are proplists (kept in order),
%% arrays are lists of binaries, strings are binaries, plus booleans.
encode([{_, _} | _] = Obj, Depth) ->
    Pad = indent(Depth + 1),
    Members = [[Pad, string(bin(K)), <<": ">>, encode(V, Depth + 1)] || {K, V} <- Obj],
    [<<"{\n">>, lists:join(<<",\n">>, Members), $\n, indent(Depth), $}];
encode(List, _Depth) when is_list(List) ->
    [$[, lists:join(<<", ">>, [string(B) || B <- List]), $]];
encode(true, _) -> <<"true">>;
encode(false, _) -> <<"false">>;
encode(B, _) when is_binary(B) -> string(B).

indent(N) -> binary:copy(<<"    ">>, N).

string(B) ->
    [$", [escape(C) || C <- unicode:characters_to_list(B)], $"].

escape($") -> <<"\\\"">>;
escape($\\) -> <<"\\\\">>;
escape($\n) -> <<"\\n">>;
escape($\r) -> <<"\\r">>;
escape($\t) -> <<"\\t">>;
escape(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
escape(C) -> unicode:characters_to_binary([C]).
