// ViperGPT's VideoSegment over a list of frames (RasterImages), for the video programs of its prompts.

import { argError } from '../errors/sdvp-error';
import { type RasterImage, isRasterImage } from './image';
import { PythonError } from './python-errors';
import { PyObject } from './python-values';

/** A video handed to a ViperGPT program: its frames in order. Create with `createVideo`. */
export class ViperVideo {
  constructor(readonly frames: readonly RasterImage[]) {}
}

/** Wraps frames as a video input for `ViperInterpreter.run(..., { video })`. */
export function createVideo(frames: readonly RasterImage[]): ViperVideo {
  if (!Array.isArray(frames) || frames.length === 0) {
    throw argError('ERR_SDVP_ARG', 'frames', 'a non-empty array of RasterImage frames', frames);
  }
  frames.forEach((frame, i) => {
    if (!isRasterImage(frame)) throw argError('ERR_SDVP_ARG', `frames[${i}]`, 'a RasterImage', frame);
  });
  return new ViperVideo(Object.freeze([...frames]));
}

/** The video as a value inside a program (what `video` is in `def execute_command(video, ...)`). */
export class PyVideo extends PyObject {
  readonly typeName = 'Video';
  constructor(readonly video: ViperVideo) {
    super();
  }

  override reprText(): string {
    return `<Video of ${this.video.frames.length} frames>`;
  }
}

/** `VideoSegment(video, start, end)`: frames [start, end) of a video, numbered in the original video. */
export class VideoSegment extends PyObject {
  readonly typeName = 'VideoSegment';

  constructor(
    readonly frames: readonly RasterImage[],
    readonly start: number,
    readonly end: number,
  ) {
    super();
  }

  get numFrames(): number {
    return this.frames.length;
  }

  override reprText(): string {
    return `VideoSegment(${this.start}, ${this.end})`;
  }
}

function sliceIndex(index: number, length: number): number {
  return index < 0 ? Math.max(0, index + length) : Math.min(index, length);
}

/**
 * ViperGPT's `VideoSegment(video, start, end, parent_start)`: `video[start:end]` (Python slicing), numbered from the
 * parent's start; an empty segment raises `Exception('VideoSegment has duration=0')` as ViperGPT does.
 */
export function createVideoSegment(
  frames: readonly RasterImage[],
  start: number | null,
  end: number | null,
  parentStart = 0,
): VideoSegment {
  let segment: VideoSegment;
  if (start === null && end === null) segment = new VideoSegment(frames, 0, frames.length);
  else {
    const from = start === null ? 0 : sliceIndex(start, frames.length);
    const to = end === null ? frames.length : Math.max(from, sliceIndex(end, frames.length));
    segment = new VideoSegment(
      frames.slice(from, to),
      (start ?? 0) + parentStart,
      (end ?? frames.length) + parentStart,
    );
  }
  if (segment.numFrames === 0) throw new PythonError('Exception', 'VideoSegment has duration=0');
  return segment;
}

/** ViperGPT's `segment.trim(start, end)`: bounds clamped to the segment, numbered from its start. */
export function trimSegment(segment: VideoSegment, start: number | null, end: number | null): VideoSegment {
  const from = start === null ? null : Math.max(start, 0);
  const to = end === null ? null : Math.min(end, segment.numFrames);
  return createVideoSegment(segment.frames, from, to, segment.start);
}

/** ViperGPT's `frame_from_index`: the frame at `index` (negative counts from the end), or the last frame past it. */
export function frameAt(segment: VideoSegment, index: number): RasterImage {
  if (index >= segment.numFrames) return segment.frames[segment.numFrames - 1];
  const position = index < 0 ? index + segment.numFrames : index;
  if (position < 0) {
    throw new PythonError(
      'IndexError',
      `index ${index} is out of bounds for dimension 0 with size ${segment.numFrames}`,
    );
  }
  return segment.frames[position];
}
