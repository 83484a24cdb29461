/*
 * window.atrium: a small API over the unmodified twilio-video.js SDK for Atrium's browser tests.
 * The Python harness (tests/browser/harness.py) drives it through the DevTools protocol.
 *
 * Everything returned by an API call is plain JSON (safe for Runtime.evaluate returnByValue).
 * SDK errors are reported by `code` (in the minified bundle every error class is TwilioError).
 */
(function () {
  'use strict';

  const T0 = performance.now();
  const now = () => Math.round(performance.now() - T0);
  const mediaDiv = () => document.getElementById('media');
  const setStatus = (text) => {
    const el = document.getElementById('status');
    if (el) el.textContent = text;
  };

  // ---------------------------------------------------------------------------------------
  // Plain-JSON descriptions of SDK objects
  // ---------------------------------------------------------------------------------------

  function errorInfo(err) {
    if (err === null || err === undefined) return null;
    return {
      code: err.code === undefined ? null : err.code,
      name: err.name || null,
      message: err.message || String(err),
    };
  }

  function describe(arg, out) {
    if (arg === null || arg === undefined || typeof arg !== 'object') return;
    if (arg instanceof Error || (typeof arg.code === 'number' && 'message' in arg)) {
      out.errorCode = arg.code === undefined ? null : arg.code;
      out.errorMessage = arg.message || null;
      return;
    }
    if ('localParticipant' in arg && 'participants' in arg) { // Room
      out.roomSid = arg.sid;
      return;
    }
    if ('identity' in arg && 'tracks' in arg) { // Participant
      out.participantSid = arg.sid;
      out.identity = arg.identity;
      return;
    }
    if ('trackSid' in arg) { // TrackPublication
      out.trackSid = arg.trackSid;
      out.trackName = arg.trackName;
      out.kind = arg.kind;
      return;
    }
    if ('kind' in arg && 'name' in arg) { // Track (remote tracks have sid, local ones id)
      if (arg.sid) out.trackSid = arg.sid;
      out.trackName = arg.name;
      out.kind = arg.kind;
    }
  }

  const ROOM_EVENTS = [
    'participantConnected', 'participantDisconnected', 'participantReconnecting',
    'participantReconnected', 'reconnecting', 'reconnected', 'disconnected',
    'dominantSpeakerChanged', 'recordingStarted', 'recordingStopped',
    'trackSubscribed', 'trackUnsubscribed', 'trackSubscriptionFailed',
    'trackPublished', 'trackUnpublished', 'trackStarted', 'trackEnabled', 'trackDisabled',
    'trackSwitchedOff', 'trackSwitchedOn', 'trackPublishPriorityChanged',
    'trackDimensionsChanged', 'networkQualityLevelChanged',
  ];
  const LOCAL_PARTICIPANT_EVENTS = [
    'trackPublished', 'trackPublicationFailed', 'trackStopped', 'reconnecting', 'reconnected',
    'disconnected', 'networkQualityLevelChanged',
  ];

  // ---------------------------------------------------------------------------------------
  // Media measurement
  // ---------------------------------------------------------------------------------------

  const SAMPLE_W = 32;
  const SAMPLE_H = 24;
  const MAX_HASHES = 100000;

  function fnv1a(bytes) {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i += 1) {
      h ^= bytes[i];
      h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
  }

  function mediaStreamTrackOf(track) {
    // A twilio-video Track or a plain MediaStreamTrack.
    return track && track.mediaStreamTrack ? track.mediaStreamTrack : track;
  }

  function attachElement(track, kind) {
    let el;
    if (track && typeof track.attach === 'function') {
      el = track.attach(); // what a real application does
    } else {
      el = document.createElement(kind);
      el.srcObject = new MediaStream([track]);
      el.autoplay = true;
    }
    el.muted = kind === 'video' || el.muted;
    el.playsInline = true;
    mediaDiv().appendChild(el);
    const played = el.play();
    if (played && played.catch) played.catch(() => {}); // autoplay is allowed by a flag
    return el;
  }

  function detachElement(track, el) {
    if (track && typeof track.detach === 'function') {
      try { track.detach(el); } catch (e) { /* already detached */ }
    } else {
      el.srcObject = null;
    }
    el.remove();
  }

  class VideoMonitor {
    constructor(key, track, intervalMs) {
      this.key = key;
      this.track = track;
      this.kind = 'video';
      this.started = now();
      this.stopped = null;
      this.samples = 0; // canvas samples taken with a non-empty picture
      this.changes = 0; // samples whose hash differed from the previous one
      this.hashes = new Set();
      this.lastHash = null;
      this.callbackFrames = 0; // requestVideoFrameCallback calls
      this.presentedFrames = 0; // from the last VideoFrameCallback metadata
      this.width = 0;
      this.height = 0;
      this.el = attachElement(track, 'video');
      this.canvas = document.createElement('canvas');
      this.canvas.width = SAMPLE_W;
      this.canvas.height = SAMPLE_H;
      this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
      if (typeof this.el.requestVideoFrameCallback === 'function') {
        const onFrame = (_t, meta) => {
          if (this.stopped !== null) return;
          this.callbackFrames += 1;
          if (meta && meta.presentedFrames) this.presentedFrames = meta.presentedFrames;
          this.el.requestVideoFrameCallback(onFrame);
        };
        this.el.requestVideoFrameCallback(onFrame);
      }
      this.timer = setInterval(() => this.sample(), intervalMs);
    }

    sample() {
      const el = this.el;
      if (el.readyState < 2 || !el.videoWidth) return;
      this.width = el.videoWidth;
      this.height = el.videoHeight;
      try {
        this.ctx.drawImage(el, 0, 0, SAMPLE_W, SAMPLE_H);
      } catch (e) {
        return;
      }
      const h = fnv1a(this.ctx.getImageData(0, 0, SAMPLE_W, SAMPLE_H).data);
      this.samples += 1;
      if (this.lastHash !== null && h !== this.lastHash) this.changes += 1;
      this.lastHash = h;
      if (this.hashes.size < MAX_HASHES) this.hashes.add(h);
    }

    decodedFrames() {
      if (typeof this.el.getVideoPlaybackQuality === 'function') {
        const q = this.el.getVideoPlaybackQuality();
        return { total: q.totalVideoFrames, dropped: q.droppedVideoFrames };
      }
      return { total: null, dropped: null };
    }

    stop() {
      if (this.stopped !== null) return;
      this.final = this.stats();
      this.stopped = now();
      clearInterval(this.timer);
      detachElement(this.track, this.el);
    }

    stats() {
      if (this.final) return Object.assign({}, this.final, { stopped: this.stopped });
      const q = this.decodedFrames();
      const mst = mediaStreamTrackOf(this.track);
      return {
        key: this.key,
        kind: 'video',
        started: this.started,
        stopped: this.stopped,
        readyState: mst ? mst.readyState : null,
        width: this.width,
        height: this.height,
        samples: this.samples,
        changes: this.changes,
        distinctFrames: this.hashes.size,
        callbackFrames: this.callbackFrames,
        presentedFrames: this.presentedFrames,
        decodedFrames: q.total,
        droppedFrames: q.dropped,
        currentTime: this.el.currentTime,
      };
    }
  }

  let audioContext = null;
  function getAudioContext() {
    if (!audioContext) audioContext = new AudioContext();
    if (audioContext.state !== 'running') audioContext.resume().catch(() => {});
    return audioContext;
  }

  class AudioMonitor {
    constructor(key, track, intervalMs) {
      this.key = key;
      this.track = track;
      this.kind = 'audio';
      this.started = now();
      this.stopped = null;
      this.samples = 0;
      this.loudSamples = 0; // samples with RMS above AudioMonitor.SILENCE
      this.lastRms = 0;
      this.maxRms = 0;
      this.sumRms = 0;
      // Chrome only feeds a remote WebRTC stream into WebAudio while a media element plays it,
      // so attach it like an application would, then tap the same MediaStreamTrack.
      this.el = attachElement(track, 'audio');
      const ctx = getAudioContext();
      this.source = ctx.createMediaStreamSource(new MediaStream([mediaStreamTrackOf(track)]));
      this.analyser = ctx.createAnalyser();
      this.analyser.fftSize = 2048;
      this.buf = new Float32Array(this.analyser.fftSize);
      this.source.connect(this.analyser);
      this.timer = setInterval(() => this.sample(), intervalMs);
    }

    sample() {
      this.analyser.getFloatTimeDomainData(this.buf);
      let sum = 0;
      for (let i = 0; i < this.buf.length; i += 1) sum += this.buf[i] * this.buf[i];
      const rms = Math.sqrt(sum / this.buf.length);
      this.samples += 1;
      this.lastRms = rms;
      this.sumRms += rms;
      if (rms > this.maxRms) this.maxRms = rms;
      if (rms > AudioMonitor.SILENCE) this.loudSamples += 1;
    }

    stop() {
      if (this.stopped !== null) return;
      this.final = this.stats();
      this.stopped = now();
      clearInterval(this.timer);
      try { this.source.disconnect(); } catch (e) { /* ignore */ }
      detachElement(this.track, this.el);
    }

    stats() {
      if (this.final) return Object.assign({}, this.final, { stopped: this.stopped });
      const mst = mediaStreamTrackOf(this.track);
      return {
        key: this.key,
        kind: 'audio',
        started: this.started,
        stopped: this.stopped,
        readyState: mst ? mst.readyState : null,
        contextState: audioContext ? audioContext.state : null,
        samples: this.samples,
        loudSamples: this.loudSamples,
        lastRms: this.lastRms,
        maxRms: this.maxRms,
        meanRms: this.samples ? this.sumRms / this.samples : 0,
      };
    }
  }
  AudioMonitor.SILENCE = 0.001;

  // ---------------------------------------------------------------------------------------
  // The API
  // ---------------------------------------------------------------------------------------

  const atrium = {
    ready: false,
    version: null,
    events: [], // {t, source, event, roomSid?, participantSid?, identity?, trackSid?, ...}
    dataMessages: [], // {t, participantSid, identity, trackSid, trackName, data}
    monitors: {}, // key -> VideoMonitor | AudioMonitor
    room: null,
    localTracks: [],
    sampleIntervalMs: 100,

    record(source, event, args) {
      const entry = { t: now(), source, event };
      for (const arg of args) describe(arg, entry);
      if (event === 'networkQualityLevelChanged' && typeof args[0] === 'number') {
        entry.level = args[0];
      }
      if (event === 'trackPublishPriorityChanged' && typeof args[0] === 'string') {
        entry.priority = args[0];
      }
      atrium.events.push(entry);
      return entry;
    },

    /** Resolve to {ok: true, value} or {ok: false, error: {code, name, message}}. */
    async settle(promise) {
      try {
        return { ok: true, value: await promise };
      } catch (err) {
        return { ok: false, error: errorInfo(err) };
      }
    },

    /**
     * Create local tracks. opts: {audio, video, data} (true or constraints); data may be
     * {name, ordered, maxPacketLifeTime, maxRetransmits}.
     */
    async createLocalTracks(opts) {
      opts = opts || {};
      const tracks = [];
      if (opts.audio || opts.video) {
        const media = await Twilio.Video.createLocalTracks({
          audio: opts.audio || false,
          video: opts.video || false,
        });
        tracks.push(...media);
      }
      if (opts.data) {
        tracks.push(new Twilio.Video.LocalDataTrack(opts.data === true ? {} : opts.data));
      }
      atrium.localTracks.push(...tracks);
      return tracks.map((t) => ({ id: t.id, kind: t.kind, name: t.name }));
    },

    /**
     * A LocalAudioTrack from a WebAudio oscillator at `gain` (0..1), added to the local tracks:
     * a "microphone" whose loudness the test chooses (setToneGain changes it later). Chrome's
     * fake microphone has one fixed level; speaker detection needs two that differ.
     */
    createToneTrack(opts) {
      opts = opts || {};
      const ctx = getAudioContext();
      const oscillator = ctx.createOscillator();
      oscillator.frequency.value = opts.frequency || 440;
      const gain = ctx.createGain();
      gain.gain.value = opts.gain === undefined ? 0.5 : opts.gain;
      const destination = ctx.createMediaStreamDestination();
      oscillator.connect(gain).connect(destination);
      oscillator.start();
      atrium.toneGain = gain;
      const track = new Twilio.Video.LocalAudioTrack(destination.stream.getAudioTracks()[0],
        { name: opts.name || 'tone' });
      atrium.localTracks.push(track);
      return { id: track.id, kind: track.kind, name: track.name };
    },

    setToneGain(value) {
      atrium.toneGain.gain.value = value;
      return value;
    },

    /** Attach measuring monitors to the local media tracks (local preview). */
    monitorLocal() {
      const keys = [];
      for (const track of atrium.localTracks) {
        if (track.kind === 'data') continue;
        const key = `local:${track.kind}:${track.name}`;
        atrium.monitor(key, track);
        keys.push(key);
      }
      return keys;
    },

    /** Start measuring a twilio-video track or a plain MediaStreamTrack under `key`. */
    monitor(key, track) {
      if (atrium.monitors[key] && atrium.monitors[key].stopped === null) return key;
      const Monitor = track.kind === 'video' ? VideoMonitor : AudioMonitor;
      atrium.monitors[key] = new Monitor(key, track, atrium.sampleIntervalMs);
      return key;
    },

    unmonitor(key) {
      const m = atrium.monitors[key];
      if (m) m.stop();
    },

    /** Measurements for every monitor: {key: stats}. */
    media() {
      const out = {};
      for (const [key, m] of Object.entries(atrium.monitors)) out[key] = m.stats();
      return out;
    },

    /**
     * Connect. options: {wsServer, name, audio, video, data, logLevel, ...any ConnectOptions}.
     * audio/video/data create local tracks first (see createLocalTracks) unless `tracks` is
     * false; tracks already created with createLocalTracks are published too.
     * Always sets insights:false and, unless given, iceServers:[].
     * Resolves to atrium.state(); rejects with the SDK's error (use settle() to get its code).
     */
    async connect(token, options) {
      options = Object.assign({}, options || {});
      const { audio, video, data } = options;
      delete options.audio;
      delete options.video;
      delete options.data;
      if (audio || video || data) await atrium.createLocalTracks({ audio, video, data });
      const connectOptions = Object.assign(
        { iceServers: [], logLevel: 'warn' },
        options,
        { insights: false, tracks: atrium.localTracks.slice() },
      );
      atrium.record('atrium', 'connecting', []);
      setStatus('connecting');
      let room;
      try {
        room = await Twilio.Video.connect(token, connectOptions);
      } catch (err) {
        atrium.record('atrium', 'connectFailed', [err]);
        setStatus(`connect failed: ${err.code}`);
        throw err;
      }
      atrium.room = room;
      for (const event of ROOM_EVENTS) {
        room.on(event, (...args) => atrium.record('room', event, args));
      }
      for (const event of LOCAL_PARTICIPANT_EVENTS) {
        room.localParticipant.on(event, (...args) => atrium.record('local', event, args));
      }
      room.on('trackSubscribed', (track, publication, participant) => {
        if (track.kind === 'data') {
          track.on('message', (msg) => {
            atrium.dataMessages.push({
              t: now(),
              participantSid: participant.sid,
              identity: participant.identity,
              trackSid: publication.trackSid,
              trackName: publication.trackName,
              data: typeof msg === 'string' ? msg : { binary: Array.from(new Uint8Array(msg)) },
            });
          });
        } else {
          atrium.monitor(atrium.remoteKey(participant, publication), track);
        }
      });
      room.on('trackUnsubscribed', (track, publication, participant) => {
        if (track.kind !== 'data') atrium.unmonitor(atrium.remoteKey(participant, publication));
      });
      room.on('disconnected', () => setStatus('disconnected'));
      // Tracks already subscribed before the listeners were added.
      room.participants.forEach((participant) => {
        participant.tracks.forEach((publication) => {
          if (publication.isSubscribed && publication.track) {
            atrium.record('room', 'trackSubscribed', [publication.track, publication, participant]);
            if (publication.track.kind !== 'data') {
              atrium.monitor(atrium.remoteKey(participant, publication), publication.track);
            }
          }
        });
      });
      atrium.record('atrium', 'connected', [room]);
      setStatus(`connected ${room.sid}`);
      return atrium.state();
    },

    remoteKey(participant, publication) {
      return `remote:${participant.identity}:${publication.kind}:${publication.trackSid}`;
    },

    /** Send on every local data track (or the one named `trackName`). */
    sendData(data, trackName) {
      let sent = 0;
      for (const track of atrium.localTracks) {
        if (track.kind === 'data' && (trackName === undefined || track.name === trackName)) {
          track.send(data);
          sent += 1;
        }
      }
      return sent;
    },

    state() {
      const room = atrium.room;
      if (!room) return null;
      const publication = (p) => ({
        trackSid: p.trackSid,
        trackName: p.trackName,
        kind: p.kind,
        enabled: p.isTrackEnabled,
        subscribed: p.isSubscribed === undefined ? null : p.isSubscribed,
      });
      const lp = room.localParticipant;
      return {
        sid: room.sid,
        name: room.name,
        state: room.state,
        mediaRegion: room.mediaRegion || null,
        localParticipant: {
          sid: lp.sid,
          identity: lp.identity,
          state: lp.state,
          networkQualityLevel: lp.networkQualityLevel,
          networkQualityStats: lp.networkQualityStats ? JSON.parse(JSON.stringify(
            lp.networkQualityStats)) : null,
          tracks: Array.from(lp.tracks.values()).map(publication),
        },
        participants: Array.from(room.participants.values()).map((p) => ({
          sid: p.sid,
          identity: p.identity,
          state: p.state,
          networkQualityLevel: p.networkQualityLevel,
          tracks: Array.from(p.tracks.values()).map(publication),
        })),
        dominantSpeaker: room.dominantSpeaker ? room.dominantSpeaker.sid : null,
        isRecording: room.isRecording,
      };
    },

    /** Disconnect (if connected), stop monitors and local tracks. */
    disconnect() {
      const room = atrium.room;
      if (room && room.state !== 'disconnected') room.disconnect();
      for (const m of Object.values(atrium.monitors)) m.stop();
      for (const track of atrium.localTracks) if (track.stop) track.stop();
      return room ? room.state : null;
    },

    errorInfo,
  };

  window.atrium = atrium;
  window.addEventListener('unhandledrejection', (ev) => {
    atrium.record('page', 'unhandledrejection', [ev.reason]);
  });
  if (window.Twilio && window.Twilio.Video) {
    atrium.version = Twilio.Video.version;
    atrium.ready = true;
    setStatus(`ready (twilio-video ${atrium.version})`);
  } else {
    atrium.loadError = 'twilio-video.min.js did not load (run scripts/install-browser-deps.sh)';
    setStatus(atrium.loadError);
  }
}());
